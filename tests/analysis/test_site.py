"""The published site, read as files: every page is there, every internal link resolves, nothing
is fetched from elsewhere, and the charts hold the numbers of the history."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.analysis.changepoints import find_change_points
from bench.analysis.site import publish
from bench.analysis.site.pages import page_name
from bench.cli import main
from bench.perf.history_check import history_of, synthetic_nights, write_history

REPO = "https://github.com/example/lae-bench"
NIGHTS, CELLS, STEP_NIGHT = 30, 6, 15


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.targets += [(name, value) for name, value in attrs if name in ("href", "src")]


def links_of(page: Path) -> list[tuple[str, str]]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.targets


@pytest.fixture(scope="module")
def history():
    """CPU and GPU nights of 6 cells; every CPU time steps up 1.5x at night 15."""
    return history_of(synthetic_nights(NIGHTS, CELLS, 0.02, seed=4, step_night=STEP_NIGHT,
                                       gpu=True))


@pytest.fixture(scope="module")
def site(history, tmp_path_factory) -> Path:
    return publish(history, tmp_path_factory.mktemp("site"), repo_url=REPO).parent


def test_every_page_is_written(site, history):
    frame = history.frame
    assert (site / "index.html").is_file() and (site / "speedup.html").is_file()
    assert {p.name for p in (site / "cells").iterdir()} == {page_name(c) for c in
                                                            set(frame["cell"])}
    nights = {p.name for p in (site / "nights").iterdir()}
    assert nights == {page_name(n) for n in set(frame["night"])} | {"index.html"}


def test_every_internal_link_resolves_and_nothing_external_is_loaded(site):
    pages = list(site.rglob("*.html"))
    for page in pages:
        for attribute, target in links_of(page):
            if attribute == "src" or not target.startswith(REPO):
                assert not re.match(r"^[a-z]+:", target), f"{page}: {target}"
                assert (page.parent / target.split("#")[0]).resolve().is_file(), \
                    f"{page.relative_to(site)} links to missing {target}"


def test_the_overview_marks_the_latest_change_of_every_stepped_cell(site, history):
    overview = (site / "index.html").read_text()
    assert overview.count('<svg class="spark"') == 2 * 2 * CELLS     # 2 metrics x 2 backends
    # the CPU series of every cell stepped 1.5x: a regression (red) mark in its time sparkline
    assert overview.count('stroke="#c62828"') >= CELLS - 2           # k <= 5 allows 2.0x
    assert overview.count(">20") >= CELLS


def test_a_cell_page_draws_its_series_and_links_its_commit_ranges(site, history):
    points = find_change_points(history)
    point = next(p for p in points if p.metric == "time")
    page = (site / "cells" / page_name(point.cell)).read_text()
    assert f'{REPO}/compare/{point.commit_before}...{point.commit_after}' in page
    assert page.count('<svg class="chart"') == 2 * 3 + 1     # 3 charts a backend, speed-up
    assert page.count("<circle") >= 2 * 3 * NIGHTS           # a point per night and chart
    assert 'class="change"' in page


def test_the_speedup_page_has_a_line_per_k(site):
    page = (site / "speedup.html").read_text()
    assert "k = 2" in page and "k = 5" in page and "<polyline" in page


def test_a_night_page_draws_figure_4(site, history):
    night = history.frame["night"].iloc[0]
    page = (site / "nights" / page_name(night)).read_text()
    assert "Figure 4" in page and page.count("<polyline") == 1   # one model and optimizer
    assert page.count("<circle") == CELLS                         # at six values of k


def test_without_gpu_nights_the_speedup_page_says_so(tmp_path):
    index = publish(history_of(synthetic_nights(8, 2, 0.02)), tmp_path)
    assert "nothing to compare" in (index.parent / "speedup.html").read_text()


def test_publish_via_the_cli(tmp_path, capsys):
    history = write_history(synthetic_nights(8, 2, 0.02), tmp_path / "h")
    assert main(["publish", str(history), "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    assert main(["publish", str(tmp_path / "nothing"), "--out", str(tmp_path / "s2")]) == 2
    assert "is not a directory" in capsys.readouterr().err
