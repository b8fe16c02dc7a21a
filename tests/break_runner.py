"""Run pytest node ids, each in its own copy of the repository, from one process that imported torch once.

    python tests/break_runner.py JOBS.json

``JOBS.json`` is a list of ``{"copy": folder, "test": node id, "log": file}``. Each job runs in a forked child
with ``copy`` as working directory and import path, so that the copy's (broken) package is the one imported;
the heavy third-party imports are done once, before any fork, and no torch operation runs in this process (a
forked child must not inherit a thread pool). Prints one JSON list of exit statuses (None: timed out).
"""

import json
import os
import signal
import sys
import time

import cv2  # noqa: F401
import numpy  # noqa: F401
import pytest
import torch  # noqa: F401
import torchvision  # noqa: F401

PARALLEL_RUNS = 2
TIMEOUT = 600


def run_job(job: dict) -> None:
    """In the child: run one test in its copy; never returns."""
    os.setsid()  # one process group per job, killed as a whole on a timeout
    log = os.open(job['log'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(job['copy'])
    sys.path[0] = job['copy']  # was this script's folder, the unbroken tests
    os.environ['PYTHONPATH'] = job['copy']  # for the processes the test starts
    # -m '': the test runs whichever tier it is in (the default selection, -m 'not slow', would drop a slow one).
    code = pytest.main([job['test'], '-x', '-q', '-m', '', '-p', 'no:cacheprovider',
                        f'--basetemp={job["copy"]}/.pytest'])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def run_all(jobs: list[dict]) -> list[int | None]:
    statuses: list[int | None] = [None] * len(jobs)
    running: dict[int, tuple[int, float]] = {}
    pending = list(range(len(jobs)))
    while pending or running:
        while pending and len(running) < PARALLEL_RUNS:
            index = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                run_job(jobs[index])
            running[pid] = (index, time.monotonic())
        time.sleep(0.2)
        for pid, (index, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[index] = os.waitstatus_to_exitcode(status)
                del running[pid]
            elif time.monotonic() - started > TIMEOUT:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del running[pid]
    return statuses


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        print(json.dumps(run_all(json.load(f))))
