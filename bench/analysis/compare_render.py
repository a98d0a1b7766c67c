"""Renderings of a ``Comparison``: terminal text, Markdown (CI job summaries) and JSON.

All of them are built from the same rows (``finding_rows``, ``cell_rows``), so the three
formats always say the same thing; the HTML report reuses the rows too.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Callable, Sequence

from .compare import (IMPROVEMENT, NOT_COMPARED, REGRESSION, Check, CellComparison, Comparison,
                      FieldDifference, cell_label)
from ..formatting import format_epochs, format_seconds

FINDING_HEADER = ("cell", "what", "baseline", "candidate", "change", "detail")
QUANTITY_NAMES = {"epochs": "epochs to d_align {t}", "status": "status",
                  "time": "time per epoch"}


VALUE_FORMATS: dict[str, Callable[[Any], str]] = {
    "epochs": format_epochs, "time": format_seconds,
    "status": lambda v: "-" if v is None else str(v)}


def format_change(check: Check) -> str:
    """'x1.47 (limit x1.25)' with p for timings; censoring changes in words."""
    if check.ratio is None:
        return ""
    if math.isinf(check.ratio):
        text = "now censored"
    elif check.ratio == 0:
        text = "now reached"
    else:
        text = f"x{check.ratio:.2f}"
    if check.limit is not None:
        text += f" (limit x{check.limit:g})"
    if check.p_value is not None:
        text += f", p = {check.p_value:.2g}"
    return text


def finding_row(cell: CellComparison, check: Check, threshold: float) -> list[str]:
    fmt = VALUE_FORMATS[check.quantity]
    return [cell_label(cell.cell), QUANTITY_NAMES[check.quantity].format(t=threshold),
            fmt(check.baseline), fmt(check.candidate), format_change(check), check.note]


def finding_rows(comparison: Comparison, verdict: str) -> list[list[str]]:
    """One row per check with the given verdict (FINDING_HEADER columns)."""
    threshold = comparison.thresholds.d_align_threshold
    return [finding_row(cell, check, threshold) for cell, check in comparison.findings(verdict)]


def cell_header(comparison: Comparison) -> tuple[str, ...]:
    t = comparison.thresholds.d_align_threshold
    return ("cell", f"epochs to {t}", "statuses", "time per epoch", "verdict")


def cell_rows(comparison: Comparison) -> list[list[str]]:
    """One row per matched cell: each quantity as 'baseline -> candidate', and the verdict."""
    rows = []
    for cell in comparison.cells:
        row = [cell_label(cell.cell)]
        for quantity in ("epochs", "status", "time"):
            check = cell.check(quantity)
            fmt = VALUE_FORMATS[quantity]
            row.append("not compared" if check.verdict == NOT_COMPARED
                       else f"{fmt(check.baseline)} -> {fmt(check.candidate)}")
        rows.append(row + [cell.verdict])
    return rows


def not_compared_counts(comparison: Comparison) -> list[tuple[str, str, int]]:
    """(quantity, reason, number of cells) for every reason a check was skipped; reasons
    with per-cell numbers after a colon ('candidate timed on a busy machine: 3 of 39 blocks
    ...') are counted by what precedes it (each cell's full note stays in its check)."""
    counts = Counter((check.quantity, check.note.split(": ")[0])
                     for _, check in comparison.findings(NOT_COMPARED))
    return [(quantity, note, n) for (quantity, note), n in sorted(counts.items())]


def difference_text(difference: FieldDifference, match_by: Sequence[str]) -> str:
    """'max_epochs: 2000 (baseline) vs 1000 (candidate): cells that differ in it are not
    compared' and the like."""
    if difference.field == "hyperparameters":
        text = f"hyperparameters differ ({difference.baseline})"
    else:
        text = (f"{difference.field}: {difference.baseline} (baseline) vs "
                f"{difference.candidate} (candidate)")
    if difference.field in match_by:
        return text + ": matched across on purpose (--match-by)"
    if difference.in_identity:
        return text + ": cells that differ in it are different experiments, not compared"
    return text + ": not part of a cell's identity"


def header_lines(comparison: Comparison) -> list[str]:
    """What differs between the two sets, and notes on the data; printed before any cell."""
    lines = [difference_text(d, comparison.match_by) for d in comparison.differences]
    lines += [f"note: {note}" for note in comparison.notes]
    unmatched = [d.field for d in comparison.differences
                 if d.in_identity and d.field not in comparison.match_by]
    if unmatched and not comparison.cells:
        lines.append("to compare across a field on purpose: --match-by "
                     + " / --match-by ".join(f for f in unmatched if f not in (
                         "model", "optimizer", "k")))
    return lines


def _unmatched_lines(comparison: Comparison) -> list[str]:
    lines = []
    for side, cells in (("baseline", comparison.only_in_baseline),
                        ("candidate", comparison.only_in_candidate)):
        if cells:
            lines.append(f"only in the {side} ({plural_cells(len(cells))}): "
                         + "; ".join(cell_label(c) for c in cells))
    return lines


def plural_cells(n: int) -> str:
    """'1 cell', '3 cells'."""
    return f"{n} cell" if n == 1 else f"{n} cells"


def _headline(comparison: Comparison) -> str:
    return (f"{plural_cells(len(comparison.cells))} matched, "
            f"{len(comparison.findings(REGRESSION))} regressions, "
            f"{len(comparison.findings(IMPROVEMENT))} improvements; thresholds: "
            f"{comparison.thresholds.source}")


# --- terminal text ------------------------------------------------------------------------------

def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Columns padded to their widest entry."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    return "\n".join(indent + line for line in lines)


def render_text(comparison: Comparison) -> str:
    parts = [f"lae-bench compare: baseline {', '.join(comparison.baseline_dirs)} "
             f"vs candidate {', '.join(comparison.candidate_dirs)}",
             _headline(comparison)]
    differences = header_lines(comparison)
    if differences:
        parts += ["differs between the two sets:", *(f"  {line}" for line in differences)]
    parts.append("")
    if comparison.cells:
        parts += [text_table(cell_header(comparison), cell_rows(comparison)), ""]
    for verdict, title in ((REGRESSION, "REGRESSIONS"), (IMPROVEMENT, "improvements")):
        rows = finding_rows(comparison, verdict)
        if rows:
            parts += [f"{title} ({len(rows)}):", text_table(FINDING_HEADER, rows), ""]
    parts += [f"not compared: {quantity} in {plural_cells(n)}: {note}"
              for quantity, note, n in not_compared_counts(comparison)]
    parts += _unmatched_lines(comparison)
    parts.append(f"verdict: {comparison.verdict} (exit {comparison.exit_code})")
    return "\n".join(parts) + "\n"


# --- Markdown -----------------------------------------------------------------------------------

def _md_cell(value: str) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(comparison: Comparison) -> str:
    """A job summary: verdict first, regressions and improvements, every cell folded away."""
    icon = {0: "✅", 1: "❌", 3: "⚠️"}[comparison.exit_code]
    parts = [f"### {icon} lae-bench compare: {comparison.verdict}", "",
             f"Baseline `{', '.join(comparison.baseline_dirs)}`, candidate "
             f"`{', '.join(comparison.candidate_dirs)}`. {_headline(comparison)}.", ""]
    differences = header_lines(comparison)
    if differences:
        parts += ["**Differs between the two sets:**", "",
                  *(f"- {_md_cell(line)}" for line in differences), ""]
    for verdict, title in ((REGRESSION, "Regressions"), (IMPROVEMENT, "Improvements")):
        rows = finding_rows(comparison, verdict)
        if rows:
            parts += [f"#### {title}", "", markdown_table(FINDING_HEADER, rows), ""]
    parts += [f"- not compared: {quantity} in {plural_cells(n)}: {note}"
              for quantity, note, n in not_compared_counts(comparison)]
    parts += [f"- {line}" for line in _unmatched_lines(comparison)]
    if comparison.cells:
        parts += ["", f"<details><summary>All {len(comparison.cells)} cells</summary>", "",
                  markdown_table(cell_header(comparison), cell_rows(comparison)), "",
                  "</details>"]
    return "\n".join(parts) + "\n"


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=1) + "\n"


RENDERERS: dict[str, Callable[[Comparison], str]] = {
    "text": render_text, "markdown": render_markdown, "json": render_json}
