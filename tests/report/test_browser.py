"""The report pages as a person sees them: rendered by headless Chromium, every section present,
every image loaded with a non-zero size, nothing on the console, and a screenshot that is not blank.

Chromium runs as a command (``--dump-dom`` and ``--screenshot``): a small script inserted at the top
of a copy of the page records errors (script errors, failed loads, ``console.error``) and, after the
load event, the images' sizes and the sections into the DOM that ``--dump-dom`` returns. Where no
browser is installed the tests skip saying so, unless ``HIDLR_REQUIRE_BROWSER=1`` (set by ``.ci/run``)
makes that a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from hidlr.demo import run_demo
from hidlr.report import build_results_page

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEMO_SECTIONS = ["summary", "loss-curves", "rates", "densities", "intervals", "epistemic", "calibration", "provenance"]

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => __errors.push(e.message ||
  ("failed to load " + (e.target && (e.target.src || e.target.href || e.target.tagName)))), true);
const __consoleError = console.error;
console.error = function (...a) { __errors.push(a.map(String).join(" ")); __consoleError.apply(console, a); };
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
    height: i.naturalHeight, shown: i.getBoundingClientRect().width}));
  const sections = [...document.querySelectorAll("section[data-section]")].map(s => s.id);
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({title: document.title, images, sections, errors: __errors,
                                    text: document.body.innerText.length});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    """A headless-capable Chromium on PATH (or ``$HIDLR_BROWSER``)."""
    named = os.environ.get("HIDLR_BROWSER")
    if named:
        return shutil.which(named) or named
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        msg = f"no headless Chromium found (looked for {', '.join(BROWSERS)}; apt-get install chromium)"
        if os.environ.get("HIDLR_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " and HIDLR_REQUIRE_BROWSER=1")
        pytest.skip(msg)
    return path


def _chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def render(browser: str, page: Path, tmp: Path) -> tuple[dict, list[str], np.ndarray]:
    """``(check, console lines, screenshot RGB array)`` for the page at ``page``."""
    probed = tmp / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    dom = _chromium(browser, tmp, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the check did not run; chromium exit {dom.returncode}, stderr tail:\n{dom.stderr[-2000:]}"
    check = json.loads(html.unescape(found.group(1)))
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    shot = tmp / "shot.png"
    res = _chromium(
        browser, tmp, "--virtual-time-budget=10000", "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()
    )
    assert shot.is_file(), f"no screenshot; chromium exit {res.returncode}: {res.stderr[-2000:]}"
    import matplotlib.image

    return check, console, matplotlib.image.imread(str(shot))[..., :3]


def assert_renders(browser: str, page: Path, tmp: Path, sections: list[str], min_images: int) -> dict:
    check, console, shot = render(browser, page, tmp)
    assert check["sections"] == sections
    assert check["errors"] == [], check["errors"]
    assert console == [], console
    assert len(check["images"]) >= min_images
    for img in check["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0 and img["shown"] > 0, img
    assert check["text"] > 500  # the page has words, not only a frame
    # not blank: many colours, and a good share of pixels unlike the most common (background) one
    pixels = (shot.reshape(-1, 3) * 255).round().astype(np.int64)
    codes = pixels[:, 0] * 65536 + pixels[:, 1] * 256 + pixels[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    assert values.size > 50, f"screenshot has only {values.size} colours"
    assert 1 - counts.max() / codes.size > 0.05, "screenshot is almost one colour"
    return check


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo.html"
    res = run_demo(steps=20, n=150, epochs=3, out=out, console=Console(quiet=True), progress=False)
    assert res.page == out.resolve()
    return out


def test_demo_page_renders_with_every_plot(browser, demo_page, tmp_path):
    check = assert_renders(browser, demo_page, tmp_path, DEMO_SECTIONS, min_images=6)
    assert len(check["images"]) == 6  # loss curves, rates, densities, intervals, epistemic/aleatoric, calibration
    assert check["title"] == "hidlr demo"


RESULTS = sorted(p.name for p in (ROOT / "benchmarks" / "results").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", RESULTS)
def test_committed_benchmark_pages_render(browser, name, tmp_path):
    """Every committed results folder (lr, uci, kl, and any added later) gets a page that renders."""
    folder = ROOT / "benchmarks" / "results" / name
    pngs = len(list(folder.glob("*.png")))
    built = build_results_page(folder)
    page = built.write(tmp_path / "report.html")
    check = assert_renders(browser, page, tmp_path, [s.anchor for s in built.sections], min_images=pngs)
    has_markdown = any((folder / n).is_file() for n in ("report.md", "overhead.md"))
    assert ("report" in check["sections"]) == has_markdown
    assert len(check["images"]) == pngs  # every plot in the folder is on the page, once
    assert check["title"] == built.title


def test_a_broken_page_is_caught(browser, tmp_path):
    """The check can fail: a missing image and a script error are both reported."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head></head><body><section id="x" data-section="x"></section>'
        '<img src="missing.png" alt="gone"><script>noSuchFunction()</script></body></html>'
    )
    check, console, _ = render(browser, bad, tmp_path)
    assert check["sections"] == ["x"]
    assert check["images"][0]["width"] == 0
    assert any("missing.png" in e for e in check["errors"])
    assert any("noSuchFunction" in e for e in check["errors"])
    assert any("noSuchFunction" in line for line in console)
