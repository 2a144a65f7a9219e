"""The HTML page builder and its Markdown renderer: self-contained output, clear errors."""

import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from hidlr.report import Page
from hidlr.report.markdown import render_markdown, split_title
from hidlr.report.page import data_uri, png_bytes


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    return png_bytes(fig)


def test_figure_is_inlined_as_the_same_png_and_the_figure_closed():
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    page = Page("t")
    page.section("Plots").figure(fig, "a line")
    assert not plt.fignum_exists(fig.number)
    src = re.search(r'<img src="data:image/png;base64,([^"]+)"', page.render()).group(1)
    assert base64.b64decode(src).startswith(b"\x89PNG\r\n\x1a\n")


def test_page_has_sections_nav_and_escapes_text(tmp_path):
    page = Page("Title <b>", "sub", footer="foot")
    page.section("First part").paragraph("x < y & z", "takeaway").table(["a", "b"], [["1.5", "text"]])
    page.section("Second", "two").code("$ make demo")
    out = page.write(tmp_path / "sub" / "p.html")
    text = out.read_text()
    assert out.is_absolute() and text.startswith("<!DOCTYPE html>")
    assert '<section id="first-part"' in text and '<section id="two"' in text
    assert '<a href="#first-part">First part</a>' in text
    assert "Title &lt;b&gt;" in text and "x &lt; y &amp; z" in text
    assert "<td class=num>1.5</td><td>text</td>" in text
    assert "http" not in text  # nothing to fetch


def test_page_errors_name_the_problem():
    page = Page("t")
    page.section("A")
    with pytest.raises(ValueError, match="anchor 'a' exists"):
        page.section("a")
    sec = page.section("B")
    with pytest.raises(ValueError, match="row has 1 cells, the header 2"):
        sec.table(["x", "y"], [["1"]])
    with pytest.raises(ValueError, match="not a PNG"):
        sec.figure(b"GIF89a", "not png")
    with pytest.raises(TypeError, match="matplotlib Figure"):
        sec.figure(3, "a number")
    assert sec.blocks == []  # nothing half-added


def test_markdown_inlines_local_png_and_drops_other_images(tmp_path):
    png = _png()
    (tmp_path / "plot.png").write_bytes(png)
    out = render_markdown(
        "# Head\n\n![plot](plot.png) ![gone](missing.png) ![web](http://x/y.png)\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>",
        images=tmp_path,
    )
    assert data_uri(png) in out
    assert "[image not included: gone]" in out and "[image not included: web]" in out
    assert "missing.png" not in out.split("[image not included")[0]
    assert "<h2>Head</h2>" in out and "<table>" in out
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_split_title():
    assert split_title("\n# A title\n\nbody") == ("A title", "\nbody")
    assert split_title("no title") == (None, "no title")
