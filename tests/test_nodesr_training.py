"""NODE-SR through the real entry points: train, validate at a non-integer scale, save, resume; test on B100."""

import os
import re
import subprocess

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr
from conftest import SHARED_DATA, TORCHRUN, TRAIN_WORKER, needs_shared_data, run_entry_point
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from oisr_basicsr.data.continuous_scale_dataset import benchmark_pair
from oisr_basicsr.data.resize import upscale_lr

NAME = 'tiny_NODESR_VDSR'
VAL_SCALE = 2.5
B100 = SHARED_DATA / 'benchmark' / 'B100' / 'HR'
# NODESR.md, bicubic row of B100 at x1.5, x2.5, x3.5 (ICASSP paper, Table 2).
PUBLISHED_BICUBIC = {1.5: 32.14, 2.5: 28.13, 3.5: 26.42}


@pytest.fixture
def single_thread(monkeypatch):
    # The entry points run in subprocesses on a shared 2-core machine; one thread each is faster than two.
    monkeypatch.setenv('OMP_NUM_THREADS', '1')


@pytest.fixture
def hr_folder(tmp_path):
    """Four 32x32 HR images with detail at a 4-pixel scale, which bicubic at x2.5 blurs and a CNN can restore."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'hr'
    folder.mkdir()
    for i in range(4):
        coarse = rng.uniform(0, 255, size=(10, 10, 3)).astype(np.float32)
        image = cv2.resize(coarse, (32, 32), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f'img{i}.png'), np.clip(image, 0, 255).astype(np.uint8))
    return folder


def _dataset(folder, **keys) -> dict:
    return {'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'},
            **keys}


def _train_options(folder, total_iter: int) -> dict:
    return {
        'name': NAME,
        'model_type': 'NODESRModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            # One training scale and the whole images as patches: the loss then changes only with the weights.
            'train': _dataset(folder, name='tiny', gt_size=32, scales=[VAL_SCALE], num_worker_per_gpu=0,
                              batch_size_per_gpu=4, dataset_enlarge_ratio=1),
            'val_1': _dataset(folder, name=f'tiny_x{VAL_SCALE}', test_scale=VAL_SCALE),
        },
        'network_g': {'type': 'NODEVDSR', 'num_feat': 16, 'num_layer': 4},
        'ode': {'solver': 'rk4', 'num_steps': 1, 'gradient': 'checkpoint'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 2e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': 20, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 20, 'use_tb_logger': True},
    }


def _log(experiment_dir) -> str:
    return '\n'.join(path.read_text() for path in sorted(experiment_dir.glob('train_*.log')))


def _bicubic_psnr(folder, scale: float) -> float:
    """Mean PSNR of bicubic upscaling, computed here with BasicSR's metric."""
    values = []
    for path in sorted(folder.glob('*.png')):
        lr, reference = benchmark_pair(cv2.imread(str(path)), scale)
        lr_tensor = torch.from_numpy(lr.astype(np.float32) / 255.).permute(2, 0, 1)[None]
        sr = upscale_lr(lr_tensor, scale, reference.shape[:2])[0].permute(1, 2, 0).numpy()
        sr = np.clip(np.round(sr * 255.), 0, 255).astype(np.uint8)
        values.append(calculate_psnr(sr, reference, crop_border=3, test_y_channel=True))
    return float(np.mean(values))


@pytest.mark.slow
def test_train_validate_save_and_resume(tmp_path, hr_folder, single_thread):
    experiment = tmp_path / 'experiments' / NAME
    first = run_entry_point('oisr_basicsr.train', _train_options(hr_folder, total_iter=40), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    log = _log(experiment)

    losses = [float(v) for v in re.findall(r'l_pix: ([0-9.e+-]+)', log)]
    assert len(losses) == 40
    # The model starts as bicubic (zero dynamics) and learns to restore detail.
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    assert set(re.findall(r'nfe: ([0-9.e+-]+)', log)) == {'4.0000e+00'}  # one RK4 step: 4 evaluations

    psnr = [float(v) for v in re.findall(rf'Validation tiny_x{VAL_SCALE}\s+# psnr: ([0-9.]+)', log)]
    assert len(psnr) == 3  # iterations 20, 40 and the final validation
    assert psnr[-1] > _bicubic_psnr(hr_folder, VAL_SCALE) + 0.3

    assert {p.name for p in (experiment / 'models').iterdir()} == {'net_g_20.pth', 'net_g_40.pth', 'net_g_latest.pth'}
    assert {p.name for p in (experiment / 'training_states').iterdir()} == {'20.state', '40.state'}
    events = EventAccumulator(str(tmp_path / 'tb_logger' / NAME))
    events.Reload()
    assert {'nfe', 'losses/l_pix', f'metrics/tiny_x{VAL_SCALE}/psnr'} <= set(events.Tags()['scalars'])

    resumed = run_entry_point('oisr_basicsr.train', _train_options(hr_folder, total_iter=42), tmp_path,
                              '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = _log(experiment)
    assert re.search(r'Resuming training from epoch: \d+, iter: 40\.', log)
    assert [int(v) for v in re.findall(r'iter:\s+(\d+), lr', log)] == list(range(1, 43))
    # The trained weights came back: the loss goes on from where it was, not from bicubic.
    resumed_losses = [float(v) for v in re.findall(r'l_pix: ([0-9.e+-]+)', log)][40:]
    assert len(resumed_losses) == 2 and max(resumed_losses) < 0.95 * np.mean(losses[:5])


def test_wrong_ode_option_is_named(tmp_path, hr_folder, single_thread):
    options = _train_options(hr_folder, total_iter=1)
    options['ode']['solver'] = 'rk45'
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 2
    assert "error: ode.solver: not an allowed value; got 'rk45'; allowed: 'euler', " in result.stderr


@pytest.mark.slow
def test_two_processes_keep_the_replicas_in_step(tmp_path, hr_folder, single_thread):
    # The solver calls the network several times per forward, which DDP's hooks do not allow, so NODESRModel
    # calls the bare network and averages the gradients itself; without that the ranks' weights drift apart.
    options = _train_options(hr_folder, total_iter=3)
    options['datasets']['train'].update(batch_size_per_gpu=2, scales=[1.5, 2.5, 3.5])
    options['name'] = 'ddp_nodesr'
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(options))
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    command = [*TORCHRUN, str(TRAIN_WORKER), '-opt', str(option_file), '--launcher', 'pytorch']
    env = {**os.environ, 'WEIGHTS_OUT': str(weights_dir), 'PYTHONWARNINGS': 'ignore'}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = (torch.load(weights_dir / f'rank{r}.pth') for r in (0, 1))
    assert rank0['conv_last.weight'].abs().sum() > 0  # trained away from the zero start
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    logs = list((tmp_path / 'experiments' / 'ddp_nodesr').glob('train_*.log'))
    assert len(logs) == 1  # written by rank 0 alone
    log = logs[0].read_text()
    # 4 images, 2 per process, 2 processes: one iteration consumes all 4 images.
    assert 'World size (gpu number): 2' in log and re.search(r'Require iter number per epoch: 1\n', log)
    assert len(list((tmp_path / 'tb_logger' / 'ddp_nodesr').iterdir())) == 1


@needs_shared_data('benchmark/B100/HR')
@pytest.mark.slow
def test_zero_dynamics_on_b100_is_the_published_bicubic(tmp_path, single_thread):
    # A fresh model has f = 0, so the test pipeline (LR made on the fly, I(t0), solve, PSNR on Y with ceil(t)
    # shaved) must give the bicubic row of the paper's Table 2.
    options = {
        'name': 'zero_dynamics_B100', 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {f'test_{i}': _dataset(B100, name=f'B100_x{scale}', test_scale=scale)
                     for i, scale in enumerate(PUBLISHED_BICUBIC)},
        # The smallest network: f is zero whatever its size, and B100 at full size is 100 images per scale.
        'network_g': {'type': 'NODEVDSR', 'num_feat': 2, 'num_layer': 2},
        'ode': {'solver': 'euler', 'num_steps': 1},
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'val': {'save_img': False, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
    }
    result = run_entry_point('oisr_basicsr.test', options, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'results' / options['name']).glob('test_*.log')).read_text()
    for scale, published in PUBLISHED_BICUBIC.items():
        measured = float(re.search(rf'Validation B100_x{scale}\s+# psnr: ([0-9.]+)', log).group(1))
        assert abs(measured - published) < 0.1, (scale, measured, published)
