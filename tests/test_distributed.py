"""Two CPU processes (gloo) through the real entry point, with torchrun and with the legacy launcher."""

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import (
    RUN_TIMEOUT,
    TORCHRUN,
    TRAIN_WORKER,
    final_weights,
    finish_run,
    iterations_logged,
    kill_when_paused,
    start_run,
    tiny_train_options,
)

LAUNCHERS = {
    'torchrun': TORCHRUN,
    # Passes --local-rank=N, which BasicSR's own parser rejects.
    'legacy': [sys.executable, '-m', 'torch.distributed.launch', '--standalone', '--nproc_per_node=2'],
}


@pytest.mark.slow
@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_two_process_training(tmp_path, paired_folders, launcher):
    name = f'ddp_{launcher}'
    options = tiny_train_options(*paired_folders, name, total_iter=4)
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(options))
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    env = {**os.environ, 'WEIGHTS_OUT': str(weights_dir), 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    command = [*LAUNCHERS[launcher], str(TRAIN_WORKER), '-opt', str(option_file), '--launcher', 'pytorch']
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]

    rank0, rank1 = (torch.load(weights_dir / f'rank{r}.pth') for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept the replicas in step
    saved = torch.load(tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth')['params']
    assert all(torch.equal(saved[k], rank0[k]) for k in saved)

    experiment = tmp_path / 'experiments' / name
    logs = list(experiment.glob('train_*.log'))
    assert len(logs) == 1  # one log file, written by rank 0 alone
    log = logs[0].read_text()
    # 4 images, 2 per process, 2 processes: one iteration consumes all 4 images.
    assert 'World size (gpu number): 2' in log
    assert re.search(r'Require iter number per epoch: 1\n', log)
    assert len(list((tmp_path / 'tb_logger' / name).iterdir())) == 1  # one tensorboard event file
    assert re.search(r'# psnr: [0-9.]+', log)  # rank 0 validated while rank 1 waited


@pytest.mark.slow
def test_killed_two_process_run_resumes_every_rank_exactly(tmp_path, paired_folders):
    # One image per process: 2 iterations per epoch. Killed after iteration 5, the run resumes from the state of
    # iteration 3, in the middle of epoch 1. Each rank crops and flips with its own generators (seeded with
    # seed + rank), so the resumed run repeats the uninterrupted one only if every rank gets its own back.
    name = 'ddp_resume'
    options = tiny_train_options(*paired_folders, name, total_iter=6)
    options['datasets']['train']['batch_size_per_gpu'] = 1
    options['logger'].update(save_checkpoint_freq=3, use_tb_logger=False)
    options['train']['ema_decay'] = 0.9
    options['val']['val_freq'] = 1000
    reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
    for workdir in (reference_dir, killed_dir):
        workdir.mkdir()
        (workdir / 'options.yml').write_text(yaml.safe_dump(options))
    train = [*TORCHRUN, '-m', 'oisr_basicsr.train', '-opt', 'options.yml', '--launcher', 'pytorch']
    reference = start_run(train, reference_dir)
    killed = start_run([*TORCHRUN, str(TRAIN_WORKER), '-opt', 'options.yml', '--launcher', 'pytorch'], killed_dir,
                       PAUSE_AT_ITER='5', PAUSE_MARKER=str(killed_dir / 'paused'))
    kill_when_paused(killed, killed_dir / 'paused', ranks=2)
    reference_output = finish_run(reference, reference_dir)
    assert reference.returncode == 0, reference_output[-4000:]
    states = killed_dir / 'experiments' / name / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['3.state']
    assert len(torch.load(states / '3.state', weights_only=True)['rng']) == 2  # one entry per rank

    resumed = start_run([*train, '--auto_resume'], killed_dir)
    output = finish_run(resumed, killed_dir)
    assert resumed.returncode == 0, output[-4000:]
    assert 'Resuming training from epoch: 1, iter: 3.' in output
    assert iterations_logged(output) == [4, 5, 6]
    expected, result = final_weights(reference_dir, name), final_weights(killed_dir, name)
    assert all(torch.equal(expected[key], result[key]) for key in expected)


@pytest.mark.slow
def test_nan_loss_on_one_rank_stops_every_rank(tmp_path, paired_folders):
    # Only rank 1's loss is NaN: rank 0 must stop too (a rank that trained on would wait for it forever).
    name = 'ddp_nan'
    options = tiny_train_options(*paired_folders, name, total_iter=6)
    options['logger'].update(use_tb_logger=False)
    options['val']['val_freq'] = 1000
    (tmp_path / 'options.yml').write_text(yaml.safe_dump(options))
    run = start_run([*TORCHRUN, str(TRAIN_WORKER), '-opt', 'options.yml', '--launcher', 'pytorch'], tmp_path,
                    NAN_AT_ITER='3', NAN_RANK='1')
    output = finish_run(run, tmp_path)
    assert run.returncode != 0
    last_good = tmp_path / 'experiments' / name / 'training_states' / '2.state'
    assert (f'error: Non-finite loss at iteration 3 (l_pix = nan); training stopped. Last good training state: '
            f'{last_good}.') in output
    assert (f'error: Non-finite loss at iteration 3 (a loss on another process); training stopped. Last good '
            f'training state: {last_good}.') in output
    assert not (tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth').exists()
