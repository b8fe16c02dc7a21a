"""One run owns experiments/<name>: a second run of the same name stops at start and touches nothing of the first;
a run killed with kill -9 leaves no lock behind."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from conftest import tiny_train_options

from oisr_basicsr.run_lock import RunLock, RunLockError, lock_run_folders

NAME = 'locked_run'
TIMEOUT = 300


def _options(paired_folders) -> dict:
    options = tiny_train_options(*paired_folders, NAME, total_iter=6)
    options['val']['val_freq'] = 1000
    return options


def _train(option_file: Path, workdir: Path, *extra: str, **popen) -> subprocess.Popen:
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    return subprocess.Popen([sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(option_file), *extra],
                            cwd=workdir, env=env, text=True, **popen)


def _run(option_file: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    process = _train(option_file, workdir, *extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f'{path} never appeared'


def _hashes(experiment: Path) -> dict[str, str]:
    files = [*experiment.glob('models/*'), *experiment.glob('training_states/*')]
    return {str(p.relative_to(experiment)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_second_run_of_the_same_name_is_refused_and_the_first_is_untouched(tmp_path, paired_folders):
    solo_dir, shared_dir = tmp_path / 'solo', tmp_path / 'shared'
    solo_dir.mkdir()
    shared_dir.mkdir()
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(_options(paired_folders)))
    solo = _run(option_file, solo_dir)
    assert solo.returncode == 0, solo.stderr[-3000:]

    experiment = shared_dir / 'experiments' / NAME
    with open(tmp_path / 'first.log', 'w') as log:
        first = _train(option_file, shared_dir, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(experiment / 'models' / 'net_g_2.pth', first)
            first.send_signal(signal.SIGSTOP)  # mid-run, lock held: the second run cannot outpace it
            for extra in ((), ('--auto_resume', )):
                second = _run(option_file, shared_dir, *extra)
                assert second.returncode == 2, second.stderr[-3000:]
                lines = second.stderr.strip().splitlines()
                assert len(lines) == 1 and 'Traceback' not in second.stderr
                assert lines[0].startswith(f'error: {experiment} is in use by another run '
                                           f'(PID {first.pid} on host {socket.gethostname()}); nothing was changed.')
            assert sorted(p.name for p in (shared_dir / 'experiments').iterdir()) == [f'.{NAME}.lock', NAME]
            assert [p.name for p in (shared_dir / 'tb_logger').iterdir()] == [NAME]
        finally:
            first.send_signal(signal.SIGCONT)
            first.wait(timeout=TIMEOUT)
    assert first.returncode == 0, (tmp_path / 'first.log').read_text()[-3000:]
    solo_hashes = _hashes(solo_dir / 'experiments' / NAME)
    assert len(solo_hashes) == 7  # net_g_2, 4, 6, latest and states 2, 4, 6
    assert _hashes(experiment) == solo_hashes
    assert len(list(experiment.glob('train_*.log'))) == 1


@pytest.mark.slow
def test_kill_9_leaves_no_lock_that_blocks_auto_resume(tmp_path, paired_folders):
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(_options(paired_folders)))
    run = _train(option_file, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / 'experiments' / NAME / 'training_states' / '2.state', run)
    finally:
        run.kill()
        run.wait(timeout=TIMEOUT)
    assert run.returncode == -signal.SIGKILL
    assert (tmp_path / 'experiments' / f'.{NAME}.lock').read_text() == f'PID {run.pid} on host {socket.gethostname()}\n'

    resumed = _run(option_file, tmp_path, '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = '\n'.join(p.read_text() for p in (tmp_path / 'experiments' / NAME).glob('train_*.log'))
    assert 'Resuming training from epoch' in log
    assert (tmp_path / 'experiments' / NAME / 'models' / 'net_g_latest.pth').is_file()


def test_lock_names_its_holder_and_is_free_after_release(tmp_path):
    folder = tmp_path / 'experiments' / 'x'
    with RunLock(folder):
        with pytest.raises(RunLockError, match=f'in use by another run \\(PID {os.getpid()} on host '):
            RunLock(folder).__enter__()
    with RunLock(folder):  # released by the first one's exit
        pass
    assert not folder.exists()  # the lock lives beside the folder, which BasicSR may rename


def test_only_rank_zero_takes_the_lock(tmp_path):
    opt = {'is_train': True, 'rank': 1, 'dist': False,
           'path': {'experiments_root': str(tmp_path / 'experiments' / 'x')}}
    lock_run_folders(opt)
    assert not (tmp_path / 'experiments').exists()


def test_testing_locks_results(tmp_path):
    results = tmp_path / 'results' / 'x'
    opt = {'is_train': False, 'rank': 0, 'dist': False, 'path': {'results_root': str(results)}}
    with ExitStack() as held:
        lock_run_folders(opt, held)
        with pytest.raises(RunLockError, match=f'{results} is in use by another run'):
            lock_run_folders(opt, ExitStack())
    assert (tmp_path / 'results' / '.x.lock').is_file()


@pytest.mark.slow
def test_under_torchrun_every_rank_stops_when_the_folder_is_taken(tmp_path, paired_folders):
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(_options(paired_folders)))
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29533',
               '-m', 'oisr_basicsr.train', '-opt', str(option_file), '--launcher', 'pytorch']
    experiment = tmp_path / 'experiments' / NAME
    with RunLock(experiment):  # another run holds the folder
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    # Rank 0 found the lock taken and told rank 1: both stop with the same message, neither hangs.
    assert result.stderr.count(f'error: {experiment} is in use by another run (PID {os.getpid()} ') == 2
    assert not experiment.exists()


def test_a_link_at_the_lock_file_is_refused(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    (tmp_path / 'experiments').mkdir()
    (tmp_path / 'experiments' / '.x.lock').symlink_to(victim)
    with pytest.raises(RunLockError, match=r'cannot lock .*experiments/x: .*\.x\.lock: Too many levels of symbolic'):
        RunLock(tmp_path / 'experiments' / 'x').__enter__()
    assert victim.read_text() == 'precious'
