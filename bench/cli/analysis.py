"""Verbs that read stored results: ``plot``, ``compare`` and ``report``.

They never run anything: every figure, comparison and page comes from run directories.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..analysis.compare import benchmark_action_entries, compare
from ..analysis.compare_render import RENDERERS
from ..analysis.thresholds import load_thresholds
from ..paths import output_dir, output_file


def register(verbs: argparse._SubParsersAction) -> None:
    _register_plot(verbs)
    _register_compare(verbs)
    _register_report(verbs)


def _register_plot(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("plot", help="draw the figures of stored results (PNG and SVG)",
                         description="Figure 4 scaling plot, timings, GPU/CPU speed-up, "
                         "learning curves and decoder figures, from run directories only.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="where to write (default: FIRST_RUN_DIR/plots)")
    p.add_argument("--threshold", type=float, default=0.3,
                   help="d_align level of 'epochs to threshold' (default 0.3)")
    p.add_argument("--fit", action="store_true",
                   help="fit a log-log slope per curve and show it in the legend")
    p.set_defaults(handler=plot_command)


def _register_compare(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("compare", help="regression gate: compare a candidate with a baseline",
                         description="Exit 0: no regression, 1: regression, 2: bad usage, "
                         "3: nothing comparable.")
    p.add_argument("baseline", metavar="BASELINE", help="baseline run directory, or a side of "
                   "`lae-bench interleave` (DIR/baseline: its rounds are the timing samples)")
    p.add_argument("candidate", metavar="CANDIDATE", help="candidate run directory, or a side "
                   "of `lae-bench interleave` (DIR/candidate)")
    p.add_argument("--thresholds", metavar="FILE",
                   help="thresholds YAML (default: built-in, as results/thresholds.yaml)")
    p.add_argument("--allow-cross-machine", action="store_true",
                   help="compare timings even when CPU model or device differ")
    p.add_argument("--match-by", action="append", default=[], metavar="FIELD",
                   help="compare cells across FIELD on purpose (repeatable): lr, "
                   "hyperparameters, max_epochs, eval_every, thresholds, data_id, dtype, "
                   "backend. By default cells match only when every field that changes "
                   "their numbers agrees; the fields that differ are listed at the top")
    p.add_argument("--format", choices=sorted(RENDERERS), default="text")
    p.add_argument("--export-gab", metavar="FILE", help="also write the candidate's numbers "
                   "as github-action-benchmark customSmallerIsBetter JSON")
    p.set_defaults(handler=compare_command)


def _register_report(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("report", help="one self-contained HTML page of a run",
                         description="Plots, per-cell table, environment and (with --baseline) "
                         "the comparison, in one HTML file without external assets.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--baseline", metavar="RUN_DIR", help="compare with this run directory")
    p.add_argument("--out", metavar="FILE.html", help="default: RUN_DIR/report.html")
    p.add_argument("--thresholds", metavar="FILE", help="thresholds YAML for the comparison")
    p.add_argument("--allow-cross-machine", action="store_true")
    p.set_defaults(handler=report_command)


def plot_command(args: argparse.Namespace) -> int:
    from ..analysis.plots import all_plots, write_plots   # matplotlib only when plotting

    plots = all_plots(args.run_dirs, args.threshold, args.fit)
    out = output_dir(Path(args.out) if args.out else Path(args.run_dirs[0]) / "plots", "--out")
    for path in write_plots(plots, out):
        print(f"wrote {path}")
    for plot in plots:
        if plot.figure is None:
            print(f"skipped {plot.name}: {plot.skipped}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    thresholds = load_thresholds(args.thresholds)
    if args.export_gab:
        output_file(args.export_gab, "--export-gab")
    comparison = compare(args.baseline, args.candidate, thresholds,
                         allow_cross_machine=args.allow_cross_machine, match_by=args.match_by)
    sys.stdout.write(RENDERERS[args.format](comparison))
    if args.export_gab:
        entries = benchmark_action_entries(args.candidate, thresholds.d_align_threshold)
        Path(args.export_gab).write_text(json.dumps(entries, indent=1) + "\n")
    return comparison.exit_code


def report_command(args: argparse.Namespace) -> int:
    from ..analysis.report import write_report

    if args.out:
        output_file(args.out, "--out")
    path = write_report(args.run_dir, args.out, baseline=args.baseline,
                        thresholds=load_thresholds(args.thresholds),
                        allow_cross_machine=args.allow_cross_machine)
    print(f"wrote {path}")
    return 0
