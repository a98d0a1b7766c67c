"""The ``lae-bench`` command: parses arguments and hands each verb to its handler.

Verb groups live in sibling modules, each with ``register(subparsers)`` adding its verbs and a
``handler`` default; handlers return an exit code.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import EXIT_RUN_FAILED, EXIT_USAGE, USER_ERRORS

EPILOG = """exit codes:
  0  success (compare: no regression)
  1  a run errored (compare: a regression was found)
  2  bad usage or configuration: one line names the key, the value and what is allowed
  3  compare: nothing comparable between the two result sets
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"lae-bench: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import analysis, run, speed

    parser = _Parser(prog="lae-bench", description="How fast do linear autoencoders "
                     "recover ordered principal components? Sweeps, tables, plots, gates.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for module in (run, analysis, speed):
        module.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        args = parser.parse_args(["run", *(argv or [])])  # no verb: the quick preset
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as exc:
        print(f"lae-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `lae-bench presets | head`: the reader left, nothing to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("lae-bench: interrupted; finished runs are saved, rerun to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or a failed run: say it in one line, keep the exit code
        print(f"lae-bench: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
