"""One run owns its folders: ``experiments/<name>`` and ``tb_logger/<name>`` (training) or ``results/<name>``.

BasicSR starts a second run of the same name by renaming the first one's folder to ``*_archived_*`` (or, with
``--auto_resume``, by writing into it) while the first keeps writing; both corrupt each other's checkpoints.
A run therefore holds an exclusive ``flock`` on ``experiments/.<name>.lock`` (``results/.<name>.lock`` when
testing) from before anything is written until it ends. The kernel drops the lock when the process ends in
any way, ``kill -9`` included, so a lock never needs cleaning up; the file itself stays, holding the PID and
host of the last run that took it.
"""

import fcntl
import os
import socket
from contextlib import ExitStack
from pathlib import Path

import torch.distributed as dist

from .errors import RunLockError

# Locks taken without an ExitStack: kept open, hence held, until the process exits.
_HELD_FOR_PROCESS = ExitStack()


class RunLock:
    """An exclusive, non-blocking lock on ``folder``, held from :meth:`__enter__` to :meth:`__exit__`.

    Args:
        folder: The run's folder, e.g. ``experiments/<name>``; the lock file is ``.<name>.lock`` beside it,
            so that BasicSR may rename the folder itself while the lock is held.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder.parent / f'.{self.folder.name}.lock'
        self._fd: int | None = None

    def __enter__(self) -> 'RunLock':
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted at the lock's place is refused, never written through.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise RunLockError(f'cannot lock {self.folder}: {self.path}: {error.strerror} (a symbolic link or an '
                               'unwritable folder?); nothing was changed.') from None
        self._take(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'PID {os.getpid()} on host {socket.gethostname()}\n'.encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def check_free(self) -> None:
        """Raise :class:`RunLockError` (the message a run would print) if another run holds the lock; creates
        nothing: a missing lock file is a free lock, an existing one is locked for an instant and released."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as error:
            raise RunLockError(f'cannot lock {self.folder}: {self.path}: {error.strerror} (a symbolic link or an '
                               'unreadable file?); nothing was changed.') from None
        self._take(fd)
        os.close(fd)  # releases the flock at once

    def _take(self, fd: int) -> None:
        """Lock ``fd``, an open lock file; closed and :class:`RunLockError` raised if another run holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip() or 'a process that is starting'
            os.close(fd)
            raise RunLockError(
                f'{self.folder} is in use by another run ({holder}); nothing was changed. Wait for that run to '
                f'end (or stop it) before starting or resuming this one, or choose another name.') from None


def run_folders(opt: dict) -> list[Path]:
    """The folders a run of ``opt`` (as :func:`~oisr_basicsr.startup.parse_options` returns it) writes to."""
    if opt['is_train']:
        return [Path(opt['path']['experiments_root'])]
    return [Path(opt['path']['results_root'])]


def check_run_folders_free(opt: dict) -> None:
    """Raise :class:`RunLockError`, as :func:`lock_run_folders` would, if another run holds a folder of ``opt``'s
    run; creates nothing (``oisr check``)."""
    for folder in run_folders(opt):
        RunLock(folder).check_free()


def lock_run_folders(opt: dict, hold: ExitStack | None = None) -> None:
    """Lock the run's folder on rank 0; every rank stops with :class:`RunLockError` when it is taken.

    ``tb_logger/<name>`` is covered by the lock of ``experiments/<name>``: only a training run of that name
    writes there.

    Args:
        opt: Parsed options with ``is_train``, ``rank``, ``dist`` and the run's paths.
        hold: Keeps the lock until it is closed; None keeps it until the process exits.
    """
    hold = _HELD_FOR_PROCESS if hold is None else hold
    refusal = None
    if opt['rank'] == 0:
        try:
            for folder in run_folders(opt):
                hold.enter_context(RunLock(folder))
        except RunLockError as error:
            refusal = str(error)
    if opt['dist']:
        # The other ranks never write to the folder, but they must stop too rather than wait for rank 0.
        shared = [refusal]
        dist.broadcast_object_list(shared, src=0)
        refusal = shared[0]
    if refusal is not None:
        raise RunLockError(refusal)
