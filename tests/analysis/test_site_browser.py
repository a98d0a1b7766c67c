"""The published site in a real headless browser (Debian's Chromium, driven by Playwright):
pages load without a console error or a network request, the charts render with points and
non-empty boxes, and every link on them resolves. Skipped, saying why, where no Chromium is
installed (``.ci/run`` installs it).

``python -m tests.analysis.test_site_browser SITE OUT_DIR`` takes the screenshots of the docs.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from bench.analysis.site import publish
from bench.perf.history_check import history_of, synthetic_nights

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

# What each page's charts look like, measured in the page: [svg count, drawn points, the
# smallest width and height of a chart's box], and every href resolved by the browser.
PROBE = """() => {
  const svgs = [...document.querySelectorAll('svg')];
  const boxes = svgs.map(s => s.getBoundingClientRect());
  return {svgs: svgs.length,
          points: document.querySelectorAll('svg circle, svg polyline').length,
          minWidth: Math.min(...boxes.map(b => b.width)),
          minHeight: Math.min(...boxes.map(b => b.height)),
          shapes: [...document.querySelectorAll('svg polyline')].slice(0, 50)
                    .map(p => p.getBBox()).filter(b => b.width > 0 || b.height > 0).length,
          links: [...document.querySelectorAll('a[href]')].map(a => a.href)};
}"""


def browser_context(profile: Path):
    """A Playwright context in Chromium with a fresh profile; skips the test without one."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("no Chromium: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (the test extra has it)")
    playwright = sync_api.sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS[1:],
        viewport={"width": 1280, "height": 900})
    return playwright, context


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    history = history_of(synthetic_nights(40, 12, 0.05, seed=7, step_night=25, gpu=True))
    return publish(history, tmp_path_factory.mktemp("site"),
                   repo_url="https://github.com/example/lae-bench").parent


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    playwright, context = browser_context(tmp_path_factory.mktemp("profile"))
    yield context
    context.close()
    playwright.stop()


def visit(context, page_path: Path) -> tuple[dict, list[str], list[str]]:
    """Load a page: what PROBE measured, the console errors and the non-file requests."""
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:")
            else None)
    page.goto(page_path.as_uri(), wait_until="load")
    probe = page.evaluate(PROBE)
    page.close()
    return probe, errors, requests


def pages_of(site: Path) -> list[Path]:
    cells = sorted((site / "cells").iterdir())
    nights = sorted(p for p in (site / "nights").iterdir() if p.name != "index.html")
    return [site / "index.html", cells[0], cells[-1], site / "speedup.html",
            site / "nights" / "index.html", nights[0], nights[-1]]


@pytest.mark.slow
def test_pages_load_without_errors_and_their_charts_render(site, browser):
    for path in pages_of(site):
        probe, errors, requests = visit(browser, path)
        where = path.relative_to(site)
        assert errors == [], f"{where}: console errors {errors}"
        assert requests == [], f"{where}: fetched {requests}"
        if path.name == "index.html" and path.parent.name == "nights":
            continue                                   # the list of nights: a table only
        assert probe["svgs"] > 0 and probe["points"] > 0, f"{where}: no chart drawn"
        assert probe["minWidth"] > 0 and probe["minHeight"] > 0, f"{where}: an empty chart"
        assert probe["shapes"] > 0, f"{where}: no line has a box"


@pytest.mark.slow
def test_every_link_on_the_pages_resolves(site, browser):
    for path in pages_of(site):
        probe, _, _ = visit(browser, path)
        for link in probe["links"]:
            url = urlparse(link)
            if url.scheme == "file":
                assert Path(unquote(url.path)).is_file(), f"{path.name}: {link} is missing"
            else:
                assert link.startswith("https://github.com/example/lae-bench/"), link


def screenshots(site: Path, out: Path) -> list[Path]:
    """PNG screenshots of the overview and of the first cell page with a change point."""
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        playwright, context = browser_context(Path(profile))
        written = []
        cell = next(p for p in sorted((site / "cells").iterdir())
                    if 'class="regression"' in p.read_text())
        for path, name, whole in ((site / "index.html", "history-overview.png", False),
                                  (cell, "history-cell.png", True)):
            page = context.new_page()
            page.goto(path.as_uri(), wait_until="load")
            page.screenshot(path=str(out / name), full_page=whole)
            page.close()
            written.append(out / name)
        context.close()
        playwright.stop()
    return written


if __name__ == "__main__":
    for written in screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"wrote {written}")
