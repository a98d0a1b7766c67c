"""Exit codes of ``lae-bench``, the same in every verb (docs/reliability.md), and the lines that
go with the exits every verb shares (interrupted, terminated, internal error). Standard library
only: the entry guard imports this before anything slow."""
from __future__ import annotations

import os
import sys
import tempfile
import traceback

EXIT_OK = 0
EXIT_RUN_FAILED = 1              # run: a run errored; compare: a regression. Nothing else
EXIT_USAGE = 2                   # bad input or environment, named in one line
EXIT_NOTHING_COMPARABLE = 3      # compare: no cell in common
EXIT_INTERNAL = 70               # EX_SOFTWARE (sysexits.h): a bug of ours, to be reported
EXIT_INTERRUPTED = 130           # 128 + SIGINT, as shells say
EXIT_TERMINATED = 143            # 128 + SIGTERM

INTERRUPTED = "lae-bench: interrupted; finished runs are saved, rerun to resume"
TERMINATED = "lae-bench: terminated (SIGTERM); finished runs are saved, rerun to resume"


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (locks released, finished runs kept)."""


def raise_terminated(signum, frame) -> None:
    raise Terminated()


def say(line: str) -> None:
    """One line on stderr, even when stderr is gone (a closed pipe)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def internal_error(exc: BaseException) -> int:
    """Report an unexpected exception as one line: where its details are, and to report it."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        fd, path = tempfile.mkstemp(prefix="lae-bench-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"lae-bench {' '.join(sys.argv[1:])}\n\n{details}")
        where = f"; details in {path}"
    except OSError:                  # a full disk must not hide the report itself
        where = ""
    say(f"lae-bench: internal error, a bug in lae-bench rather than in the input; please "
        f"report it with the command line{where} (exit {EXIT_INTERNAL})")
    return EXIT_INTERNAL
