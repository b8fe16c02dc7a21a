"""Distributed runs that come back after a restart: the process group's start, the resume of a restarted group,
and the end of a run that lost one of its processes.

Why the process group is not started with ``init_process_group()``'s defaults: torchrun's c10d rendezvous (torch
2.14) keeps one TCP store for the whole job, hosted by the agent of the first node, and tells its workers to use it
(``TORCHELASTIC_USE_AGENT_STORE=True``, ``MASTER_ADDR``, ``MASTER_PORT``). What a process group publishes there
when it starts (the address of every rank, for gloo as for NCCL) outlives the workers. When torchrun restarts the
group, a rank that starts before its peer reads the peer's dead address: gloo's connection is refused, or both
ranks wait for each other until the process-group timeout. The restart counts cannot tell the starts apart
(``TORCHELASTIC_RESTART_COUNT`` is kept by each agent, and an agent that restarts for another node's failure keeps
its own). :func:`start_process_group` therefore gives every start a store of its own, and bounds the wait for the
other ranks.
"""

import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from .errors import DistributedRunError, UserError

T = TypeVar('T')

# How long a rank waits for every other one to start. Under torchrun and srun all ranks start together; a Python
# with torch takes seconds to start, more from a busy network file system.
START_TIMEOUT = timedelta(minutes=10)
# Where rank 0 publishes the store of this start in torchrun's store: "<port> <token>". The token, also kept in
# the store it names, tells this start's entry from one an earlier start left behind.
PUBLISHED_STORE_KEY = 'oisr_basicsr/process_group_store'
TOKEN_KEY = 'oisr_basicsr/token'
JOINED_KEY = 'oisr_basicsr/joined'
# The longest pause between two attempts to reach rank 0's store.
MAX_RETRY_DELAY = timedelta(seconds=2)
# Set by the launcher to the number of times it restarted this run: torchrun's restarts, SLURM's requeues.
RESTART_COUNT_VARIABLES = ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')
# What gloo and NCCL raise when another process stopped or the network failed: a connection reset or closed by
# the peer, or a collective that timed out waiting for it.
LOST_PROCESS_PATTERN = re.compile(
    r'gloo/transport|connection (reset|closed) by peer|broken pipe|timed out waiting|communicator was aborted',
    re.IGNORECASE)


def start_process_group(backend: str, start_timeout: timedelta = START_TIMEOUT) -> None:
    """Start the default process group of ``RANK`` and ``WORLD_SIZE`` at ``MASTER_ADDR:MASTER_PORT``, in a store
    of this start's own, once every rank has joined; :class:`~oisr_basicsr.errors.DistributedRunError` when they do
    not within ``start_timeout``.

    Under torchrun (``TORCHELASTIC_USE_AGENT_STORE=True``) rank 0 hosts the store on a free port and publishes it in
    torchrun's store; elsewhere (SLURM) rank 0 hosts it at ``MASTER_PORT``, as ``init_process_group``'s ``env://``
    does. A rank that finds no store yet, or one an earlier start left behind, tries again after a growing pause.

    Args:
        backend: ``nccl`` or ``gloo``.
        start_timeout: How long this rank waits for the store and for every other rank.
    """
    rank, world_size = int(_launcher_variable('RANK')), int(_launcher_variable('WORLD_SIZE'))
    address, port = _launcher_variable('MASTER_ADDR'), int(_launcher_variable('MASTER_PORT'))
    deadline = time.monotonic() + start_timeout.total_seconds()
    try:
        if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == str(True):
            store = _store_published_in_launcher_store(address, port, rank, deadline)
        else:
            store = _store_at(address, port, rank == 0, deadline)
        _wait_for_every_rank(store, rank, world_size, deadline)
        # The store serves the process group from now on (new groups, NCCL's ids): the usual timeout again.
        store.set_timeout(default_pg_timeout)
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size)
    except (RuntimeError, TimeoutError) as error:  # torch's DistError, gloo's and NCCL's failures are RuntimeErrors
        raise DistributedRunError(
            f'the distributed run did not start: rank {rank} of {world_size} (MASTER_ADDR {address}, MASTER_PORT '
            f'{port}, waited up to {start_timeout.total_seconds():.0f} s): {_first_line(error)}. Start the same '
            'command on every node, and check that every node reaches MASTER_ADDR.') from None


def _launcher_variable(name: str) -> str:
    if not os.environ.get(name):
        raise DistributedRunError(f'{name} is not set: start a distributed run with torchrun (--launcher pytorch) '
                                  'or srun (--launcher slurm), which set it.')
    return os.environ[name]


def _store_published_in_launcher_store(address: str, port: int, rank: int, deadline: float) -> dist.TCPStore:
    """Rank 0: a new store, announced in torchrun's store at ``address:port``. Other ranks: that store."""
    launcher_store = _store_at(address, port, False, deadline)
    if rank == 0:
        store = _store_at(address, 0, True, deadline)  # port 0: a free one
        token = secrets.token_hex(16)
        store.set(TOKEN_KEY, token)
        launcher_store.set(PUBLISHED_STORE_KEY, f'{store.port} {token}')
        return store

    def store_of_this_start() -> dist.TCPStore | None:
        if not launcher_store.check([PUBLISHED_STORE_KEY]):
            return None
        published_port, token = launcher_store.get(PUBLISHED_STORE_KEY).decode().split()
        # An earlier start's entry names a store that went with its rank 0 (torchrun stops every worker before it
        # starts any again), or a port that now serves another store, whose token differs.
        if not _listening(address, int(published_port)):
            return None
        try:
            store = dist.TCPStore(address, int(published_port), is_master=False, wait_for_workers=False,
                                  timeout=MAX_RETRY_DELAY)
        except dist.DistError:
            return None
        return store if store.check([TOKEN_KEY]) and store.get(TOKEN_KEY).decode() == token else None

    return _retry_until(deadline, store_of_this_start, f'rank 0 published no store of this start at {address}')


def _store_at(address: str, port: int, is_host: bool, deadline: float) -> dist.TCPStore:
    """The TCP store hosted here (``is_host``), or a client of the one at ``address:port`` once it listens."""
    if not is_host:
        _retry_until(deadline, lambda: _listening(address, port) or None,
                     f'nothing answered at {address}:{port} (is rank 0 running?)')
    return dist.TCPStore(address, port, is_master=is_host, wait_for_workers=False, timeout=_time_left(deadline))


def _retry_until(deadline: float, attempt: Callable[[], T | None], failure: str) -> T:
    """What ``attempt`` returns once it is not None, tried again after 0.1 s, 0.2 s, 0.4 s ... (at most
    :data:`MAX_RETRY_DELAY`); ``TimeoutError(failure)`` when the next try would pass ``deadline``."""
    delay = 0.1
    while (result := attempt()) is None:
        if time.monotonic() + delay > deadline:
            raise TimeoutError(failure)
        time.sleep(delay)
        delay = min(2 * delay, MAX_RETRY_DELAY.total_seconds())
    return result


def _listening(address: str, port: int) -> bool:
    # A plain connection first: TCPStore logs a stack trace for every refused attempt.
    try:
        with socket.create_connection((address, port), timeout=MAX_RETRY_DELAY.total_seconds()):
            return True
    except OSError:
        return False


def _wait_for_every_rank(store: dist.Store, rank: int, world_size: int, deadline: float) -> None:
    store.set(f'{JOINED_KEY}/{rank}', '1')
    keys = [f'{JOINED_KEY}/{other}' for other in range(world_size)]
    try:
        _retry_until(deadline, lambda: store.check(keys) or None, 'not every rank joined')
    except TimeoutError:
        missing = [str(other) for other, key in enumerate(keys) if not store.check([key])]
        raise TimeoutError(f'rank(s) {", ".join(missing)} did not join') from None


def _time_left(deadline: float) -> timedelta:
    return timedelta(seconds=max(deadline - time.monotonic(), 0.001))


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def restarted_by_launcher() -> bool:
    """Whether torchrun restarted this process group or SLURM requeued the job, as seen by any rank.

    Each torchrun agent counts its own restarts: after a worker of node 1 failed, node 0's agent restarts for the
    membership change with a count still 0. The ranks agree here, so that every rank resumes or none does.
    """
    restarted = any(int(os.environ.get(name) or 0) > 0 for name in RESTART_COUNT_VARIABLES)
    if dist.is_initialized() and dist.get_world_size() > 1:
        every_rank = [False] * dist.get_world_size()
        dist.all_gather_object(every_rank, restarted)
        restarted = any(every_rank)
    return restarted


@contextmanager
def stop_on_lost_process() -> Iterator[None]:
    """Turn the failure of a collective whose peer stopped (killed, out of memory, its node lost) into
    :class:`~oisr_basicsr.errors.DistributedRunError`, which says how to continue, instead of a traceback."""
    try:
        yield
    except RuntimeError as error:
        in_group = dist.is_initialized() and dist.get_world_size() > 1
        lost = isinstance(error, dist.DistError) or LOST_PROCESS_PATTERN.search(str(error))
        if isinstance(error, UserError) or not (in_group and lost):
            raise
        raise DistributedRunError(
            f'rank {dist.get_rank()} of {dist.get_world_size()}: another process of the distributed run stopped or '
            f'cannot be reached ({_first_line(error)}); this one stops too. Run the same command with --auto_resume '
            'to continue from the newest complete training state (a group that torchrun restarts, --max-restarts, '
            'resumes by itself).') from None


def first_slurm_node(nodelist: str) -> str:
    """The first host of a SLURM node list (``SLURM_NODELIST``), as ``scontrol show hostnames`` expands it.

    Args:
        nodelist: A list such as ``gpu[01-04],cpu7``.
    """
    try:
        result = subprocess.run(['scontrol', 'show', 'hostnames', nodelist], capture_output=True, text=True,
                                timeout=60, check=True)
        return result.stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as error:
        raise DistributedRunError(
            f'--launcher slurm: MASTER_ADDR is not set and `scontrol show hostnames {nodelist}` gave no host '
            f'({_first_line(error)}); set MASTER_ADDR to the first node of the job.') from None
