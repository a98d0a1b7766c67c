"""Verbs over a nightly history: ``history`` (add a night, list change points) and ``publish``
(the static site). The work is in bench.analysis.history, .changepoints and .site."""
from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_OK, EXIT_RUN_FAILED, UsageError
from ..paths import output_dir

HISTORY_EPILOG = """usage forms:
  lae-bench history add RUN_DIR HISTORY   summarise a run directory into the history folder
  lae-bench history HISTORY               list the change points found, newest first

exit codes of `lae-bench history HISTORY`:
  0  no new regression change point
  1  a new change point is a regression beyond the thresholds (as `compare`'s 1)
  2  bad input: no such history, nothing readable in it, a bad thresholds file
Unreadable entries (corrupt, foreign, schema 1) are skipped and named in one line on stderr.
"""


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("history", help="add a night to a history, or list its change points",
                         usage="lae-bench history [options] HISTORY\n"
                               "       lae-bench history add RUN_DIR HISTORY",
                         description="Each night's results in one folder; change points per "
                         "cell series (machine, backend), newest first.",
                         epilog=HISTORY_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="+", metavar="HISTORY | add RUN_DIR HISTORY")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--thresholds", metavar="FILE",
                   help="thresholds YAML (default: built-in, as results/thresholds.yaml)")
    p.add_argument("--repo-url", metavar="URL",
                   help="link commit ranges to URL/compare/A...B (markdown)")
    p.set_defaults(handler=history_command)

    p = verbs.add_parser("publish", help="a static site of a history (offline, one folder)",
                         description="Overview of every cell, a page per cell with its series "
                         "and change points, the GPU/CPU speed-up and Figure 4 per night.")
    p.add_argument("history", metavar="HISTORY")
    p.add_argument("--out", metavar="DIR", default="site", help="default: site")
    p.add_argument("--thresholds", metavar="FILE")
    p.add_argument("--repo-url", metavar="URL", help="link commits to this repository")
    p.set_defaults(handler=publish_command)


def history_command(args: argparse.Namespace) -> int:
    words = args.words
    if words[0] == "add" and len(words) == 3:
        from ..analysis.history import add_night

        path = add_night(words[1], words[2], _thresholds(args).d_align_threshold)
        print(f"wrote {path}")
        return EXIT_OK
    if len(words) != 1:
        raise UsageError(f"history: expected HISTORY or add RUN_DIR HISTORY, got "
                         f"{' '.join(words)!r}")
    from ..analysis import changepoints

    thresholds = _thresholds(args)
    history = _load(words[0], thresholds.d_align_threshold)
    points = changepoints.find_change_points(history, thresholds)
    sys.stdout.write(changepoints.RENDERERS[args.format](history, points, args.repo_url))
    return EXIT_RUN_FAILED if changepoints.new_regressions(points) else EXIT_OK


def publish_command(args: argparse.Namespace) -> int:
    from ..analysis.site import publish

    out = output_dir(args.out, "--out")
    thresholds = _thresholds(args)
    history = _load(args.history, thresholds.d_align_threshold)
    index = publish(history, out, thresholds, repo_url=args.repo_url)
    print(f"wrote {index}")
    return EXIT_OK


def _thresholds(args: argparse.Namespace):
    from ..analysis.thresholds import load_thresholds

    return load_thresholds(args.thresholds)


def _load(path: str, threshold: float):
    """The history, its skipped entries said in one line on stderr; UsageError when nothing
    in it could be read."""
    from ..analysis.history import load_history

    history = load_history(path, threshold)
    if history.skipped:
        print(f"lae-bench: {history.skipped_line()}", file=sys.stderr)
    if history.frame.empty:
        raise UsageError(f"history: {path} holds no readable night (add one with "
                         "`lae-bench history add RUN_DIR HISTORY`)")
    return history
