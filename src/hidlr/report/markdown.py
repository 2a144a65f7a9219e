"""Markdown to HTML for report pages (markdown-it-py, a dependency of rich): CommonMark plus tables,
raw HTML escaped, local PNG images inlined so that the page stays self-contained."""

from __future__ import annotations

from pathlib import Path

from hidlr.report.page import data_uri


def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def split_title(text: str) -> tuple[str | None, str]:
    """``(title, rest)``: the text of a leading ``# heading`` line and the Markdown after it
    (``(None, text)`` when the text does not start with one)."""
    lines = text.lstrip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        return lines[0][2:].strip(), "\n".join(lines[1:])
    return None, text


def render_markdown(text: str, images: Path | None = None, shift_headings: int = 1) -> str:
    """HTML for ``text``. Headings move ``shift_headings`` levels down (a page's sections are
    ``<h2>``). An image whose source is a ``.png`` file in the folder ``images`` is inlined; any
    other image (remote, missing, not PNG) is replaced by its alt text and a note, so the page
    never asks for a file or the network."""
    md = _parser()
    tokens = md.parse(text)
    for tok in tokens:
        if tok.type in ("heading_open", "heading_close"):
            level = min(6, int(tok.tag[1]) + shift_headings)
            tok.tag = f"h{level}"
        for child in tok.children or []:
            if child.type != "image":
                continue
            src = str(child.attrs.get("src", ""))
            path = (images / src) if images is not None and "://" not in src else None
            if path is not None and path.suffix.lower() == ".png" and path.is_file():
                child.attrs["src"] = data_uri(path.read_bytes())
            else:
                alt = child.content or src
                child.type, child.tag, child.nesting, child.children = "text", "", 0, None
                child.attrs = {}
                child.content = f"[image not included: {alt}]"
    return md.renderer.render(tokens, md.options, {})
