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
                    internal_error, raise_terminated, say)


def guarded(argv: list[str] | None = None) -> int:
    """Run the CLI with SIGINT and SIGTERM turned into exit codes 130 and 143 from the first
    import on, and any escaped exception into EXIT_INTERNAL."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:               # not the main thread: signals are not ours to set
        previous = None
    try:
        from bench.cli import main
        return main(argv)
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
    finally:                         # called in-process (tests): give SIGTERM back
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def console() -> int:
    """The console script and ``python -m bench``: the guarded CLI; once its exit code is
    known, a late signal no longer changes it (nor prints a traceback)."""
    code = guarded()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return code
