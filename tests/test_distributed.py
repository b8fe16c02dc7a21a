"""Two CPU processes (gloo) through the real entry point, with torchrun and with the legacy launcher."""

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO_ROOT, tiny_train_options

LAUNCHERS = {
    'torchrun': [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29531'],
    # Passes --local-rank=N, which BasicSR's own parser rejects.
    'legacy': [sys.executable, '-m', 'torch.distributed.launch', '--nproc_per_node=2', '--master_port=29532'],
}


@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_two_process_training(tmp_path, paired_folders, launcher):
    name = f'ddp_{launcher}'
    options = tiny_train_options(*paired_folders, name, total_iter=4)
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(options))
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    env = {**os.environ, 'WEIGHTS_OUT': str(weights_dir), 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    command = [*LAUNCHERS[launcher], str(REPO_ROOT / 'tests' / 'ddp_worker.py'), '-opt', str(option_file),
               '--launcher', 'pytorch']
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
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
