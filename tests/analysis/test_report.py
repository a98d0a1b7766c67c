"""The HTML report: one self-contained file that embeds every drawn plot."""
from __future__ import annotations

import base64
import re

import pytest

from bench.cli import main
from bench.analysis.plots import all_plots

from ..helpers import CPU, cell_records, write_run

DATA_URI = re.compile(r'<img alt="[^"]*" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">')


@pytest.mark.slow  # end to end, several seconds; .ci/run runs it
def test_report_is_self_contained_and_embeds_every_plot(tmp_path, fig4_run, capsys):
    baseline = write_run(tmp_path / "baseline", cell_records([300] * 3, k=2))
    out = tmp_path / "report.html"
    assert main(["report", str(fig4_run), "--baseline", str(baseline), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # No external assets: nothing is fetched (xmlns attributes inside SVGs are names, not
    # requests, and the SVGs are base64-encoded anyway).
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    drawn = [p for p in all_plots(fig4_run) if p.figure is not None]
    svgs = [base64.b64decode(m).decode() for m in DATA_URI.findall(page)]
    assert len(svgs) == len(drawn) and all("<svg" in svg for svg in svgs)
    assert all(f'id="plot-{p.name}"' in page for p in drawn)
    assert "Comparison with the baseline" in page and CPU in page   # comparison, environment
    assert f"wrote {out}" in capsys.readouterr().out


def test_report_without_baseline_lists_skipped_plots(tmp_path, fig4_run):
    out = tmp_path / "r.html"
    assert main(["report", str(fig4_run), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Comparison with the baseline" not in page
    assert "<code>learning_curves</code>: no run stored a metric history" in page
