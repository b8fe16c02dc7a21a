"""Kill a run at any moment and resume it: the result equals an uninterrupted run; a NaN loss stops training."""

import os
import signal
import subprocess
import sys
import time

import torch
import yaml
from conftest import run_entry_point, tiny_train_options

TOTAL_ITER = 10


def _options(paired_folders, name: str) -> dict:
    options = tiny_train_options(*paired_folders, name, total_iter=TOTAL_ITER)
    # 4 images in batches of 2: states at iterations 3, 6, 9 fall in the middle of an epoch, which is where
    # BasicSR's own resume would replay samples.
    options['logger']['save_checkpoint_freq'] = 3
    options['val']['val_freq'] = 1000
    options['logger']['use_tb_logger'] = False
    options['train']['ema_decay'] = 0.9
    return options


def _final_weights(workdir, name: str) -> dict:
    saved = torch.load(workdir / 'experiments' / name / 'models' / 'net_g_latest.pth')
    return {f'{key}.{name}': value for key in ('params', 'params_ema') for name, value in saved[key].items()}


def test_killed_and_resumed_run_is_bit_identical(tmp_path, paired_folders):
    name = 'kill_resume'
    reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
    reference_dir.mkdir()
    killed_dir.mkdir()
    uninterrupted = run_entry_point('oisr_basicsr.train', _options(paired_folders, name), reference_dir)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    option_file = killed_dir / 'options.yml'
    option_file.write_text(yaml.safe_dump(_options(paired_folders, name)))
    command = [sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(option_file)]
    process = subprocess.Popen(command, cwd=killed_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed_dir / 'experiments' / name / 'training_states' / '6.state'
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (killed_dir / 'experiments' / name / 'models' / 'net_g_latest.pth').exists()

    resumed = subprocess.run([*command, '--auto_resume'], cwd=killed_dir, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    reference, result = _final_weights(reference_dir, name), _final_weights(killed_dir, name)
    assert reference.keys() == result.keys()
    for key in reference:
        assert torch.equal(reference[key], result[key]), key


def test_nan_loss_stops_with_iteration_and_last_good_state(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, 'nan_loss', total_iter=6)
    options['val']['val_freq'] = 1000
    # The scheduler multiplies the learning rate by 1e30 for iteration 3's update (BasicSR steps it from
    # iteration 2 on), so the loss of iteration 4 is NaN; the state of iteration 2 is the last good one.
    options['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [2], 'gamma': 1e30}
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 2
    state = tmp_path / 'experiments' / 'nan_loss' / 'training_states' / '2.state'
    assert f'error: Non-finite loss at iteration 4 (l_pix = nan); training stopped. Last good training state: ' \
           f'{state}.' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'experiments' / 'nan_loss' / 'models' / 'net_g_latest.pth').exists()
