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
    """A checkpoint file that cannot be read safely, holds no weights, or does not fit the network or the
    requested model."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds objects whose unpickling could execute code."""


class NonFiniteWeightsError(CheckpointError):
    """A loaded checkpoint holds NaN or infinite values."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A training loss became NaN or infinite."""


class RunLockError(UserError, RuntimeError):
    """The run's folder cannot be locked: another live run owns it, or the lock file cannot be made."""


class DistributedRunError(UserError, RuntimeError):
    """The processes of a distributed run did not all start, or one of them stopped; the message says how to go on."""


class UnsafeOutputError(UserError, OSError):
    """An output path where nothing may be written: a link, the wrong kind of file, one of the run's own inputs,
    or a place outside the folder the user named."""


class OutputExistsError(UnsafeOutputError, FileExistsError):
    """An output that exists already, where the command's policy is never to replace one."""


class InsufficientMemoryError(UserError, MemoryError):
    """Work refused before it starts: its result cannot fit in the memory of the device that would do it."""


class InferenceError(UserError, ValueError):
    """An input, output or setting that inference cannot work with; the message names it."""


class UsageError(UserError, ValueError):
    """A dataset, image or setting a tool (compare, plot-scales) cannot work with; the message names it."""


class ExportError(UserError, RuntimeError):
    """A network that cannot be exported, or an export that disagrees with PyTorch."""


class FigureRequestError(UserError, ValueError):
    """An ``oisr compare --figure`` request that is malformed, names no single image, or boxes pixels outside it."""


class ImageFileError(UserError, ValueError):
    """An image file that cannot be read, is truncated or corrupt, or is too small for its use; the message names it."""


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
