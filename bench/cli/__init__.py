"""The ``lae-bench`` command: parses arguments and hands each verb to its handler.

Verb groups live in sibling modules, each with ``register(subparsers)`` adding its verbs and a
``handler`` default; handlers return an exit code.

Layer: the top one; it may import everything below (lae_core, the ground modules, sweep,
analysis, perf) and nothing imports it but ``bench.__main__``.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..exits import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, INTERRUPTED,
                     TERMINATED, Terminated, check_signals, internal_error, signals_unwind)

EPILOG = f"""exit codes (the same in every verb; docs/reliability.md):
  0    success (compare: no regression); skipped damaged files are named in one line
  1    run: a run errored; compare, history: a regression was found. Nothing else exits 1
  2    the input or the environment is wrong: a bad flag or config key, a damaged result file,
       a path that cannot be read or written (a full disk), a run directory another run holds,
       a problem too big for memory. One line names the file or key, the value, what is allowed
  3    compare: nothing comparable between the two result sets
  {EXIT_INTERNAL}   internal error (a bug in lae-bench): one line asks to report it
  130  interrupted (Ctrl-C, SIGINT): finished runs are saved, rerun to resume
  143  terminated (SIGTERM, what CI sends on a timeout): the same
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"lae-bench: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import analysis, hessian, history, run, speed

    parser = _Parser(prog="lae-bench", description="How fast do linear autoencoders "
                     "recover ordered principal components? Sweeps, tables, plots, gates.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for module in (run, analysis, history, speed, hessian):
        module.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; every outcome is an exit code and at most one line on stderr
    (docs/reliability.md)."""
    from ..schema import skipped_line, take_skipped

    take_skipped()                        # a fresh record of skipped files per command
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:      # a bare command prints its usage instead of starting a sweep
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code = _run_verb(args)
    skipped = take_skipped()
    if skipped:
        print(f"lae-bench: {skipped_line(skipped)}", file=sys.stderr)
        if args.verb == "compare" and code not in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            return EXIT_USAGE               # never judge on damaged input: not 0, not 1
    return code


def _run_verb(args: argparse.Namespace) -> int:
    """The verb's handler; any exception it raises becomes an exit code and one line."""
    from ..errors import USER_ERRORS

    try:
        with signals_unwind():
            code = int(args.handler(args) or 0)
            check_signals()             # one whose exception a callback swallowed
            return code
    except USER_ERRORS as exc:
        print(f"lae-bench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `lae-bench presets | head`: the reader left, nothing to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(TERMINATED, file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:   # a file that cannot be read or written: a full disk, permissions
        print(f"lae-bench: error: {os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug: one line asking to report it
        return internal_error(exc)


def os_error_line(exc: OSError) -> str:
    """Which file and why ('results/x.json: Permission denied'); never the exception's class
    name. Writes of results name their file themselves (store.write_bytes_atomic)."""
    reason = exc.strerror or "I/O error"
    return f"{exc.filename}: {reason}" if exc.filename else f"a file operation failed ({reason})"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
