"""Exit codes of ``lae-bench``, the same in every verb (docs/reliability.md), the lines that
go with the exits every verb shares (interrupted, terminated, internal error), and the signal
handlers behind 130 and 143. Standard library only, and only fast modules at the top: the entry
guard imports this before anything slow."""
from __future__ import annotations

import os
import signal
import sys

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


# Signals whose exception has been raised. CPython drops an exception raised inside a __del__
# method, a weakref callback or a ctypes callback (Numba's compiler runs all three) with an
# "Exception ignored" report and carries on; remembering the signal lets check_signals raise
# it again at the next safe point, so a Ctrl-C is never lost.
_arrived: list[int] = []


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def unwind_on_signal(signum: int, frame: object) -> None:
    """The SIGINT and SIGTERM handler: remember the signal, then unwind with its exception."""
    _arrived.append(signum)
    raise _exception(signum)


def check_signals() -> None:
    """Raise the exception of a signal that arrived but whose exception was swallowed."""
    if _arrived:
        raise _exception(_arrived[0])


def _quiet_unraisable(report: object) -> None:
    """sys.unraisablehook: a swallowed signal exception is remembered, not printed."""
    if not issubclass(report.exc_type, (KeyboardInterrupt, Terminated)):
        sys.__unraisablehook__(report)


class signals_unwind:
    """While inside, SIGINT and SIGTERM unwind the main thread (KeyboardInterrupt, Terminated)
    instead of killing the process, and are never swallowed silently. On leaving, the previous
    handlers come back, or ``afterwards`` for both (the console script: SIG_IGN, so a late
    signal cannot change a known exit code). Nested uses share what arrived. A class, not
    contextlib: this module must import in a few milliseconds."""

    def __init__(self, afterwards: object = None):
        self.afterwards, self.previous, self.hook = afterwards, {}, None

    def __enter__(self) -> None:
        if sys.unraisablehook is not _quiet_unraisable:   # the outermost: a fresh start
            _arrived.clear()
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, unwind_on_signal)
        except ValueError:          # not the main thread: signals are not ours to set
            return
        self.hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if self.afterwards is None else self.afterwards)
        if self.hook is not None:
            sys.unraisablehook = self.hook


def say(line: str) -> None:
    """One line on stderr, even when stderr is gone (a closed pipe)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def internal_error(exc: BaseException) -> int:
    """Report an unexpected exception as one line: where its details are, and to report it."""
    import tempfile, traceback       # noqa: E401 - slow imports, needed only here
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
