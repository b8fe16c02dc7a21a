"""The errors a user can fix: each says what is wrong and what to do, and every entry point reports any of them as
``error: ...`` with exit status 2 (:func:`report_user_errors`), never as a traceback.

Each class also keeps the built-in base it had before the hierarchy existed, so ``except ValueError`` and the like
still catch it.
"""

import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Base of every error caused by an input, option, file or setting the user chose."""


class OptionError(UserError, ValueError):
    """An option file holds a key or value this package cannot run with."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be read safely or does not fit the network or the requested model."""


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint holds objects whose unpickling could execute code."""


class NonFiniteWeightsError(UserError, ValueError):
    """A loaded checkpoint holds NaN or infinite values."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A training loss became NaN or infinite."""


class RunLockError(UserError, RuntimeError):
    """The run's folder cannot be locked: another live run owns it, or the lock file cannot be made."""


class UnsafeOutputError(UserError, OSError):
    """An output path where a file must not be written (a symbolic link or not a regular file)."""


class InsufficientMemoryError(UserError, MemoryError):
    """Work refused before it starts: its result cannot fit in the memory of the device that would do it."""


class InferenceError(UserError, ValueError):
    """An input, output or setting that inference cannot work with; the message names it."""


class FigureRequestError(UserError, ValueError):
    """An ``oisr compare --figure`` request that is malformed, names no single image, or boxes pixels outside it."""


def error_status(error: Exception) -> int:
    """Print ``error: <message>`` on stderr and return exit status 2: how every command reports a user's error."""
    print(f'error: {error}', file=sys.stderr)
    return 2


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn any :class:`UserError` into ``error: ...`` on stderr and exit status 2.

    They say what is wrong and what to do; a traceback into BasicSR would only bury that.
    """
    try:
        yield
    except UserError as error:
        sys.exit(error_status(error))
