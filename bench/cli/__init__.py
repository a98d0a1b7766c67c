"""The ``lae-bench`` command: parses arguments and hands each verb to its handler.

Verb groups live in sibling modules, each with ``register(subparsers)`` adding its verbs and a
``handler`` default; handlers return an exit code.

Layer: the top one; it may import everything below (lae_core, the ground modules, sweep,
analysis, perf) and nothing imports it but ``bench.__main__``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

from ..errors import EXIT_RUN_FAILED, EXIT_USAGE, USER_ERRORS

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143     # 128 + SIGINT, 128 + SIGTERM, as shells say
EPILOG = """exit codes:
  0    success (compare: no regression)
  1    a run errored (compare: a regression was found)
  2    bad usage or configuration: one line names the key, the value and what is allowed
       (also: an output path that cannot be created, a run directory another run holds)
  3    compare: nothing comparable between the two result sets
  130  interrupted (Ctrl-C, SIGINT): finished runs are saved, rerun to resume
  143  terminated (SIGTERM, what CI sends on a timeout): the same
"""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (locks released, finished runs kept)."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread instead of killing the
    process on the spot; the previous handler comes back afterwards."""
    def handler(signum, frame):
        raise Terminated()
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:        # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:      # a bare command prints its usage instead of starting a sweep
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with sigterm_unwinds():
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
        return EXIT_INTERRUPTED
    except Terminated:
        print("lae-bench: terminated (SIGTERM); finished runs are saved, rerun to resume",
              file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:   # a file the user named cannot be read or written
        if exc.filename is None:
            print(f"lae-bench: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_RUN_FAILED
        print(f"lae-bench: error: {exc.filename}: {exc.strerror or type(exc).__name__}",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug or a failed run: say it in one line, keep the exit code
        print(f"lae-bench: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
