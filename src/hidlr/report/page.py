"""One self-contained HTML page: sections of text, tables and figures, images inline as base64 PNG.

The page needs nothing else to open (no network, no scripts, no files beside it), so it can be
mailed, archived or opened offline::

    page = Page("Demo", "what it shows")
    sec = page.section("Loss curves")
    sec.paragraph("Lower is better.")
    sec.figure(fig, "Validation loss against step")   # a matplotlib Figure or PNG bytes
    sec.table(["run", "loss"], [["Adam", "0.11"]])
    page.write("demo.html")
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #2d6cdf; --soft: #f4f6fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #fff; }
header { background: linear-gradient(120deg, #1f3b73, #2d6cdf); color: #fff; padding: 28px 0 22px; }
header h1 { margin: 0 0 6px; font-size: 28px; }
header p { margin: 0; opacity: .9; }
.wrap { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
nav { border-bottom: 1px solid var(--line); background: var(--soft); position: sticky; top: 0; z-index: 1; }
nav a { display: inline-block; padding: 9px 12px 9px 0; margin-right: 8px; color: var(--accent);
        text-decoration: none; font-size: 14px; }
section { padding: 18px 0 8px; border-bottom: 1px solid var(--line); }
section h2 { font-size: 21px; margin: 8px 0 10px; }
h3 { font-size: 17px; margin: 18px 0 8px; }
.takeaway { border-left: 5px solid var(--accent); background: var(--soft); padding: 12px 16px;
            font-size: 17px; margin: 12px 0; }
.note { color: var(--muted); font-size: 14px; }
figure { margin: 14px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 14px; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: var(--soft); }
tr:nth-child(even) td { background: #fafbfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: var(--soft); padding: 10px 12px; overflow-x: auto; border-radius: 4px; white-space: pre-wrap; }
footer { color: var(--muted); font-size: 13px; padding: 16px 0 40px; }
"""

_NUMBER = re.compile(r"^[-+−]?[\d.,]+(e[-+]?\d+)?( ± [\d.,e+-]+)?%?$")


def png_bytes(figure: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib Figure (closed afterwards), or ``figure`` itself if it is bytes,
    or the content of a ``.png`` file path."""
    if isinstance(figure, (bytes, bytearray)):
        data = bytes(figure)
    elif isinstance(figure, (str, Path)):
        data = Path(figure).read_bytes()
    elif hasattr(figure, "savefig"):
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
        data = buf.getvalue()
    else:
        raise TypeError(f"figure must be a matplotlib Figure, PNG bytes or a .png path, got {type(figure).__name__}")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("figure is not a PNG image")
    return data


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


class Section:
    """A titled part of a :class:`Page`; each method appends one block and returns the section."""

    def __init__(self, title: str, anchor: str) -> None:
        self.title, self.anchor = title, anchor
        self.blocks: list[str] = []

    def paragraph(self, text: str, css_class: str | None = None) -> Section:
        """Plain text (escaped); ``css_class``: "takeaway" (highlighted) or "note" (small print)."""
        cls = f' class="{css_class}"' if css_class else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def heading(self, text: str) -> Section:
        """A sub-heading."""
        self.blocks.append(f"<h3>{html.escape(text)}</h3>")
        return self

    def markdown(self, text: str, images: Path | None = None) -> Section:
        """Markdown (CommonMark and tables; raw HTML escaped). Images given by a relative path are
        read from the folder ``images`` and inlined; others are dropped with a note."""
        from hidlr.report.markdown import render_markdown

        self.blocks.append(render_markdown(text, images))
        return self

    def code(self, text: str) -> Section:
        """A preformatted block (commands, console output)."""
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def figure(self, figure: Any, caption: str, alt: str | None = None) -> Section:
        """An image (matplotlib Figure, PNG bytes or a .png path), inlined, with a caption."""
        src = data_uri(png_bytes(figure))
        self.blocks.append(
            f'<figure><img src="{src}" alt="{html.escape(alt or caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self

    def table(self, header: Sequence[Any], rows: Sequence[Sequence[Any]], caption: str | None = None) -> Section:
        """A table of strings or numbers (numbers right-aligned)."""
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = []
        for row in rows:
            if len(row) != len(header):
                raise ValueError(f"table row has {len(row)} cells, the header {len(header)}: {row!r}")
            cells = "".join(
                f"<td{' class=num' if _NUMBER.match(str(c)) else ''}>{html.escape(str(c))}</td>" for c in row
            )
            body.append(f"<tr>{cells}</tr>")
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return self

    def render(self) -> str:
        return (
            f'<section id="{self.anchor}" data-section="{self.anchor}"><h2>{html.escape(self.title)}</h2>'
            + "\n".join(self.blocks)
            + "</section>"
        )


class Page:
    """A report page: a title, a subtitle, sections (linked from a navigation bar) and a footer."""

    def __init__(self, title: str, subtitle: str = "", footer: str = "") -> None:
        self.title, self.subtitle, self.footer = title, subtitle, footer
        self.sections: list[Section] = []

    def section(self, title: str, anchor: str | None = None) -> Section:
        """Add a section; ``anchor`` (default: from the title) is its HTML id, unique on the page."""
        anchor = anchor or _slug(title)
        if any(s.anchor == anchor for s in self.sections):
            raise ValueError(f"a section with anchor {anchor!r} exists already")
        sec = Section(title, anchor)
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        """The whole page as one HTML string."""
        nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        sub = f"<p>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        foot = f"<footer><div class=wrap>{html.escape(self.footer)}</div></footer>" if self.footer else ""
        return (
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<header><div class=wrap><h1>{html.escape(self.title)}</h1>{sub}</div></header>"
            f"<nav><div class=wrap>{nav}</div></nav><main class=wrap>"
            + "\n".join(s.render() for s in self.sections)
            + f"</main>{foot}</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (parent folders created); returns the absolute path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path.resolve()
