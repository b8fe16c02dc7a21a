import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import oisr_basicsr  # BasicSR needs the import shims before its first import
from oisr_cli.commands import train as train_command

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'
# Runs oisr_basicsr.train with the hooks of its docstring (per-rank weights, a pause to be killed in, a NaN loss).
TRAIN_WORKER = REPO_ROOT / 'tests' / 'train_worker.py'
# Two CPU processes; --standalone lets the rendezvous take a free port from the OS, so concurrent runs never
# collide on a fixed one.
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
# Generous: a tiny run takes seconds, but the machine may be shared and loaded.
RUN_TIMEOUT = 600


def needs_shared_data(*folders: str) -> pytest.MarkDecorator:
    """Skip unless every folder (relative to the shared data, e.g. ``benchmark/Set5/HR``) exists; the reason names
    the missing ones."""
    missing = [str(SHARED_DATA / folder) for folder in folders if not (SHARED_DATA / folder).is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f'shared data not found: {", ".join(missing)}')


@pytest.fixture
def one_thread():
    """One torch thread for the test, the previous count restored after it (benchmark mains set their own).

    Tiny convolutions on a shared 2-core machine spend most of their time synchronising threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def basicsr_safeguards():
    """BasicSR as the entry points run it, with :func:`oisr_basicsr.install_basicsr_safeguards` (which stays
    installed for the rest of the session: it cannot be undone)."""
    oisr_basicsr.install_basicsr_safeguards()


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 BGR image with structure at several scales (pure noise cannot be super-resolved)."""
    coarse = rng.uniform(0, 255, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def paired_folders(tmp_path):
    """Four 64x64 HR images and their MATLAB-bicubic x2 LR images, as BasicSR folders."""
    return write_paired_folders(tmp_path)


def write_paired_folders(root: Path) -> tuple[Path, Path]:
    """Write the images of :func:`paired_folders` under ``root``; their folders (HR, LR)."""
    from basicsr.utils.matlab_functions import imresize

    rng = np.random.default_rng(0)
    hr_dir, lr_dir = root / 'data' / 'HR', root / 'data' / 'LRx2'
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for i in range(4):
        hr = smooth_image(rng, 64, 64)
        lr = np.clip(np.round(imresize(hr / 255., 0.5) * 255), 0, 255).astype(np.uint8)
        cv2.imwrite(str(hr_dir / f'img{i}.png'), hr)
        cv2.imwrite(str(lr_dir / f'img{i}.png'), lr)
    return hr_dir, lr_dir


def run_arguments(*argv: str) -> argparse.Namespace:
    """The command line of ``oisr train`` (``oisr test`` takes the same), parsed as ``parse_options`` takes it."""
    return train_command.COMMAND.build_parser().parse_args(argv)


def run_entry_point(module: str, options: dict, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Write ``options`` to a YAML file and run ``python -m module -opt file`` in ``workdir``."""
    option_file = workdir / f'{options["name"]}_{module.rsplit(".", 1)[-1]}.yml'
    option_file.write_text(yaml.safe_dump(options, sort_keys=False))
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    return subprocess.run([sys.executable, '-m', module, '-opt', str(option_file), *extra],
                          cwd=workdir, capture_output=True, text=True, env=env, timeout=600)


def tiny_train_options(hr_dir: Path, lr_dir: Path, name: str, total_iter: int) -> dict:
    """A tiny OISR-LF x2 run on CPU: validation and a checkpoint every 2 iterations."""
    dataset = {'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir), 'dataroot_lq': str(lr_dir),
               'io_backend': {'type': 'disk'}}
    return {
        'name': name,
        'model_type': 'SRModel',
        'scale': 2,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {**dataset, 'name': 'tiny', 'gt_size': 32, 'use_hflip': True, 'use_rot': True,
                      'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
            'val': {**dataset, 'name': 'tiny_val'},
        },
        'network_g': {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf',
                      'g_variant': 'v2'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
    }


def start_run(command: list[str], workdir: Path, log_name: str = 'run.log', **env: str) -> subprocess.Popen:
    """Start ``command`` in ``workdir`` in a new process group (a launcher and its workers are killed together);
    its output goes to ``workdir/<log_name>``."""
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1', **env}
    with open(workdir / log_name, 'w') as log:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def finish_run(process: subprocess.Popen, workdir: Path, log_name: str = 'run.log',
               timeout: float = RUN_TIMEOUT) -> str:
    """Wait for a :func:`start_run` process (killing its group after ``timeout`` seconds); its output."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: torchrun then stops its workers, which live in sessions of their own.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise
    return (workdir / log_name).read_text()


def kill_when_paused(process: subprocess.Popen, marker: Path, ranks: int = 1) -> None:
    """``kill -9`` a :func:`start_run` process group and its workers once every rank has written its process id
    to ``<marker>.rank<r>``.

    The worker waits there to be killed (``PAUSE_AT_ITER``), so the kill lands at a known iteration however
    slow the machine is. torchrun starts its workers in sessions of their own, hence the process ids.
    """
    for pid in pids_when_paused([process], marker, range(ranks)):
        os.kill(pid, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def pids_when_paused(processes: list[subprocess.Popen], marker: Path, ranks: Iterable[int]) -> list[int]:
    """The process ids that ``ranks`` write to ``<marker>.rank<r>`` when they pause (``PAUSE_AT_ITER``), once all
    have. Kills the :func:`start_run` process groups and fails when one of them ends or stalls first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    paused = [marker.with_name(f'{marker.name}.rank{rank}') for rank in ranks]
    while not all(path.exists() and path.read_text() for path in paused):
        if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
            statuses = [process.poll() for process in processes]
            for process in processes:
                with contextlib.suppress(ProcessLookupError):  # a group whose processes all ended
                    os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f'a run ended or stalled before its pause (exit statuses {statuses})')
        time.sleep(0.2)
    return [int(path.read_text()) for path in paused]


def final_weights(workdir: Path, name: str) -> dict[str, torch.Tensor]:
    """The network and EMA weights of experiment ``name``'s ``net_g_latest.pth``, in one dict."""
    saved = torch.load(workdir / 'experiments' / name / 'models' / 'net_g_latest.pth')
    return {f'{key}.{name}': value for key in ('params', 'params_ema') for name, value in saved[key].items()}


def iterations_logged(output: str) -> list[int]:
    """The iterations of the training console's lines (``iter N/total ...``) in ``output``, in order."""
    return [int(v) for v in re.findall(r'^iter (\d+)/\d+ ', output, re.MULTILINE)]


def tree_snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root`` by relative path: a file's bytes, a link's target, ``'<folder>'`` for a folder;
    equal snapshots before and after a command show that it wrote, changed and removed nothing there."""
    snapshot = {}
    for path in sorted(root.rglob('*')):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            snapshot[name] = f'-> {os.readlink(path)}'
        elif path.is_dir():
            snapshot[name] = '<folder>'
        else:
            snapshot[name] = path.read_bytes()
    return snapshot


def assert_one_line_error(stderr: str, *parts: str) -> None:
    """``stderr`` is exactly one ``error: ...`` line (no traceback) containing every one of ``parts``."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def refused_by_command(main, argv: list[str], root: Path, monkeypatch, capsys) -> str:
    """Run a command's ``main(argv)`` in-process, in the working folder ``root/work``, and assert what every refused
    input must give: exit status 2, exactly one ``error:`` line on stderr (no traceback), and nothing below ``root``
    written, changed or removed (no ``experiments/<name>``, ``results/<name>``, ``tb_logger``, output file or
    folder; every input byte-identical). The error line, without ``error: `` and its newline.

    Args:
        main: The command's ``main`` (``oisr_cli.commands.train.main``), which exits or returns its status.
        argv: Its arguments.
        root: The folder holding every input of the run (``tmp_path``).
        monkeypatch, capsys: The test's fixtures.
    """
    workdir = root / 'work'
    workdir.mkdir(exist_ok=True)
    monkeypatch.chdir(workdir)
    before = tree_snapshot(root)
    capsys.readouterr()  # what making the inputs printed
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, (status, err[-2000:])
    assert err.startswith('error: ') and err.count('\n') == 1 and err.endswith('\n'), err
    assert tree_snapshot(root) == before
    return err.removeprefix('error: ').removesuffix('\n')
