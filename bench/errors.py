"""Errors that the CLI turns into a one-line message and an exit code, never a traceback."""
from __future__ import annotations

from lae_core.backend import BackendError
from lae_core.data import DataError
from lae_core.hyper import HyperparameterError
from lae_core.train import ConfigurationError

from .exits import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NOTHING_COMPARABLE,  # noqa: F401
                    EXIT_OK, EXIT_RUN_FAILED, EXIT_TERMINATED, EXIT_USAGE)


class UsageError(ValueError):
    """Bad input: a config key, a flag or a file. The message names the key, the value and
    what is allowed."""


# Everything a user can cause with bad input; the CLI maps these to exit code 2.
USER_ERRORS = (UsageError, BackendError, DataError, HyperparameterError, ConfigurationError)
