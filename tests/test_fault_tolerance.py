"""Kill a run at any moment and resume it: the result equals an uninterrupted run; a NaN loss stops training."""

import sys

import pytest
import torch
import yaml
from conftest import (
    TRAIN_WORKER,
    final_weights,
    finish_run,
    iterations_logged,
    kill_when_paused,
    run_entry_point,
    start_run,
    tiny_train_options,
)

TOTAL_ITER = 10
# 4 images in batches of 2, 2 iterations per epoch (epoch e holds iterations 2e + 1 and 2e + 2). The state of
# iteration 3 is the latest one when the run is killed after iteration 5: it lies in the middle of epoch 1, so
# the resumed run must skip exactly the first batch of epoch 1 (BasicSR would replay it; skipping the whole
# epoch would be wrong too).
SAVE_EVERY, KILLED_AFTER = 3, 5


def _options(paired_folders, name: str) -> dict:
    options = tiny_train_options(*paired_folders, name, total_iter=TOTAL_ITER)
    options['logger']['save_checkpoint_freq'] = SAVE_EVERY
    options['val']['val_freq'] = 1000
    options['logger']['use_tb_logger'] = False
    options['train']['ema_decay'] = 0.9
    return options


@pytest.mark.slow
def test_killed_and_resumed_run_is_bit_identical(tmp_path, paired_folders):
    name = 'kill_resume'
    reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
    for workdir in (reference_dir, killed_dir):
        workdir.mkdir()
        (workdir / 'options.yml').write_text(yaml.safe_dump(_options(paired_folders, name)))
    train = [sys.executable, '-m', 'oisr_basicsr.train', '-opt', 'options.yml']
    # The uninterrupted run and the run to be killed share the machine's cores.
    reference = start_run(train, reference_dir)
    killed = start_run([sys.executable, str(TRAIN_WORKER), '-opt', 'options.yml'], killed_dir,
                       PAUSE_AT_ITER=str(KILLED_AFTER), PAUSE_MARKER=str(killed_dir / 'paused'))
    kill_when_paused(killed, killed_dir / 'paused')
    reference_output = finish_run(reference, reference_dir)
    assert reference.returncode == 0, reference_output[-3000:]
    states = killed_dir / 'experiments' / name / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['3.state']
    assert not (killed_dir / 'experiments' / name / 'models' / 'net_g_latest.pth').exists()

    resumed = start_run([*train, '--auto_resume'], killed_dir)
    output = finish_run(resumed, killed_dir)
    assert resumed.returncode == 0, output[-3000:]
    assert 'Resuming training from epoch: 1, iter: 3.' in output
    # Iterations 4 and 5 are lost with the kill and run again; none before them is.
    assert iterations_logged(output) == list(range(SAVE_EVERY + 1, TOTAL_ITER + 1))

    expected, result = final_weights(reference_dir, name), final_weights(killed_dir, name)
    assert expected.keys() == result.keys()
    for key in expected:
        assert torch.equal(expected[key], result[key]), key


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
