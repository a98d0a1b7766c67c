"""The ``lae-bench`` process's first code: signal handlers and the error guard, in place before
anything slow is imported.

Importing the CLI takes seconds (NumPy, SciPy, pandas, Numba). Ctrl-C in that time used to
print a 30-line traceback and SIGTERM killed the process silently; here both end in one line
and the documented exit code wherever they land, and an unexpected exception anywhere becomes
one line asking to report it (its traceback kept in a file, not shown). This module imports
only the standard library at the top.
"""
from __future__ import annotations

import signal

from .exits import (EXIT_INTERRUPTED, EXIT_TERMINATED, INTERRUPTED, TERMINATED, Terminated,
                    check_signals, internal_error, say, signals_unwind)


def guarded(argv: list[str] | None = None, afterwards=None) -> int:
    """Run the CLI with SIGINT and SIGTERM turned into exit codes 130 and 143 from the first
    import on, and any escaped exception into EXIT_INTERNAL. ``afterwards``: the handler both
    signals get once the code is known (None: the previous ones, for callers in-process)."""
    with signals_unwind(afterwards):
        return _guarded(argv)


def _guarded(argv: list[str] | None) -> int:
    try:
        from bench.cli import main
        code = main(argv)
        if code not in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            check_signals()          # one swallowed while importing, after the last cell
        return code
    except KeyboardInterrupt:
        say(INTERRUPTED)
        return EXIT_INTERRUPTED
    except Terminated:
        say(TERMINATED)
        return EXIT_TERMINATED
    except SystemExit as exc:        # argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Exception as exc:         # noqa: BLE001 - the guard's whole purpose
        return internal_error(exc)


def console() -> int:
    """The console script and ``python -m bench``: the guarded CLI; once its exit code is
    known, a late signal no longer changes it (nor prints a traceback)."""
    code = guarded(afterwards=signal.SIG_IGN)
    # CPython keeps one process-wide flag, "a KeyboardInterrupt went unhandled", and sets it
    # whenever one escapes an exec() of source text (dataclasses build their methods that way)
    # even if it is caught further up; at exit the flag makes the interpreter kill itself by
    # SIGINT (-2) instead of returning our 130. Every exec() of source text starts by clearing
    # it, so a trivial one does.
    exec("pass")
    return code
