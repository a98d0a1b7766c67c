"""Errors that the CLI turns into a one-line message and an exit code, never a traceback."""
from __future__ import annotations

from lae_core.backend import BackendError
from lae_core.data import DataError
from lae_core.hyper import HyperparameterError
from lae_core.train import ConfigurationError

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_NOTHING_COMPARABLE = 0, 1, 2, 3


class UsageError(ValueError):
    """Bad input: a config key, a flag or a file. The message names the key, the value and
    what is allowed."""


# Everything a user can cause with bad input; the CLI maps these to exit code 2.
USER_ERRORS = (UsageError, BackendError, DataError, HyperparameterError, ConfigurationError)
