"""One self-contained HTML page per run: plots, the per-cell table, the environment, and the
comparison with a baseline when one is given.

Self-contained means one file with no external assets: CSS is inline and every figure is an
``<img>`` whose source is a base64 SVG data URI. Data URIs (rather than inline ``<svg>``) keep
each figure's element ids in its own document, so two figures never clash.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .compare import IMPROVEMENT, REGRESSION, Comparison, compare
from .compare_render import (FINDING_HEADER, cell_header, cell_rows, finding_rows,
                             header_lines, not_compared_counts, plural_cells)
from ..formatting import format_epochs, format_seconds
from .plotkit import Plot
from .plots import plots_of_frame
from .stats import CELL, cell_summary, load_results
from ..sweep.store import load_manifest
from .thresholds import Thresholds

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
     margin-top: 2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 13px; }
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: 600; }
.verdict.ok { background: #e6f4ea; } .verdict.bad { background: #fce8e6; }
.verdict.none { background: #fef7e0; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }
"""


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
               numeric: Sequence[int] = ()) -> str:
    """An HTML table; the columns whose indices are in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{html.escape(str(v))}</td>"
                         for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def mapping_table(mapping: Mapping[str, Any] | None) -> str:
    """Key / value table of a manifest section (nested values as compact JSON)."""
    if not mapping:
        return "<p>none recorded</p>"
    rows = [(key, value if not isinstance(value, (dict, list)) else json.dumps(value))
            for key, value in mapping.items()]
    return html_table(("key", "value"), rows)


def figure_html(plot: Plot) -> str:
    """The plot as an <img> with an SVG data URI, and its caption."""
    data = base64.b64encode(plot.svg().encode()).decode("ascii")
    title = html.escape(plot.title)
    return (f'<figure id="plot-{html.escape(plot.name)}"><img alt="{title}" '
            f'src="data:image/svg+xml;base64,{data}"><figcaption>{title} '
            f"(<code>{html.escape(plot.name)}</code>)</figcaption></figure>")


def plots_section(plots: Sequence[Plot]) -> str:
    drawn = [figure_html(p) for p in plots if p.figure is not None]
    missing = [f"<li><code>{html.escape(p.name)}</code>: {html.escape(p.skipped or '')}</li>"
               for p in plots if p.figure is None]
    notes = f"<p>Not drawn:</p><ul>{''.join(missing)}</ul>" if missing else ""
    return "<h2 id='plots'>Figures</h2>" + "".join(drawn) + notes


def summary_section(frame: pd.DataFrame, threshold: float) -> str:
    """Every cell (and learning rate): seeds, how many reached, median epochs and IQR, time."""
    summary = cell_summary(frame, threshold, cell=[*CELL, "lr"])
    header = ("data", "model", "optimizer", "k", "lr", "backend/dtype", "seeds", "reached",
              f"median epochs to {threshold}", "IQR", "time per epoch")
    rows = [(s["data_id"], s["model"], s["optimizer"], s["k"], f"{s['lr']:g}",
             f"{s['backend']}/{s['dtype']}", s["runs"], s["reached"],
             format_epochs(s["epochs_median"]),
             f"{format_epochs(s['epochs_q25'])} - {format_epochs(s['epochs_q75'])}",
             format_seconds(s["epoch_time_s"])) for _, s in summary.iterrows()]
    return (f"<h2 id='cells'>Results per cell</h2><p>Censored: the median run did not reach "
            f"d_align &le; {threshold} within the epoch cap. Time per epoch: one full-batch "
            f"update of all seeds of a cell together.</p>"
            + html_table(header, rows, numeric=(3, 6, 7, 8, 9, 10)))


def comparison_section(comparison: Comparison) -> str:
    css = {0: "ok", 1: "bad", 3: "none"}[comparison.exit_code]
    parts = [f"<h2 id='comparison'>Comparison with the baseline</h2>"
             f"<p class='verdict {css}'>{html.escape(comparison.verdict)}: "
             f"{plural_cells(len(comparison.cells))} matched, "
             f"{len(comparison.findings(REGRESSION))} regressions, "
             f"{len(comparison.findings(IMPROVEMENT))} improvements (baseline "
             f"<code>{html.escape(', '.join(comparison.baseline_dirs))}</code>, thresholds: "
             f"{html.escape(comparison.thresholds.source)})</p>"]
    differences = header_lines(comparison)
    if differences:
        parts.append("<p>Differs between the two sets:</p><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in differences)
                     + "</ul>")
    for verdict, title in ((REGRESSION, "Regressions"), (IMPROVEMENT, "Improvements")):
        rows = finding_rows(comparison, verdict)
        if rows:
            parts.append(f"<h3>{title}</h3>" + html_table(FINDING_HEADER, rows))
    notes = [f"<li>{html.escape(q)} not compared in {plural_cells(n)}: {html.escape(note)}</li>"
             for q, note, n in not_compared_counts(comparison)]
    if notes:
        parts.append(f"<ul>{''.join(notes)}</ul>")
    if comparison.cells:
        parts.append("<details><summary>All matched cells</summary>"
                     + html_table(cell_header(comparison), cell_rows(comparison))
                     + "</details>")
    return "".join(parts)


def environment_section(manifest: Mapping[str, Any]) -> str:
    parts = ["<h2 id='environment'>Environment</h2>"]
    for key, title in (("machine", "Machine"), ("gpu", "GPU"), ("packages", "Packages"),
                       ("git", "Source")):
        parts.append(f"<h3>{title}</h3>" + mapping_table(manifest.get(key)))
    config = json.dumps(manifest.get("config"), indent=1, sort_keys=True)
    parts.append(f"<h3>Configuration</h3><p>hash <code>"
                 f"{html.escape(str(manifest.get('config_hash')))}</code></p>"
                 f"<details><summary>full configuration</summary><pre>{html.escape(config)}"
                 f"</pre></details>")
    return "".join(parts)


def build_report(run_dir: str | Path, baseline: str | Path | None = None,
                 thresholds: Thresholds | None = None, *,
                 allow_cross_machine: bool = False) -> str:
    """The HTML page of one run directory (compared with ``baseline`` when given)."""
    thresholds = thresholds or Thresholds()
    threshold = thresholds.d_align_threshold
    manifest = load_manifest(run_dir)
    frame = load_results(run_dir, threshold)
    sections = []
    if baseline is not None:
        sections.append(comparison_section(compare(baseline, run_dir, thresholds,
                                                   allow_cross_machine=allow_cross_machine)))
    sections += [summary_section(frame, threshold), plots_section(plots_of_frame(frame, threshold)),
                 environment_section(manifest)]
    run_id = html.escape(str(manifest.get("run_id", Path(run_dir).name)))
    created = html.escape(str(manifest.get("created_utc", "?")))
    commit = html.escape(str((manifest.get("git") or {}).get("commit", "?")))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>lae-bench report: {run_id}</title><style>{CSS}</style></head><body>"
            f"<h1>lae-bench report: {run_id}</h1><p class='sub'>created {created} UTC, "
            f"commit <code>{commit}</code>, {len(frame)} runs in "
            f"<code>{html.escape(str(run_dir))}</code></p>"
            + "".join(sections) + "</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the report (default RUN_DIR/report.html); return its path."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    page = build_report(run_dir, **kwargs)     # reads (and checks) the run first: a missing
    out.parent.mkdir(parents=True, exist_ok=True)    # run directory leaves no folder behind
    out.write_text(page, encoding="utf-8")
    return out
