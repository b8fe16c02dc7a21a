import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch
import yaml

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture
def one_thread():
    """One torch thread for the test, the previous count restored after it (benchmark mains set their own).

    Tiny convolutions on a shared 2-core machine spend most of their time synchronising threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 BGR image with structure at several scales (pure noise cannot be super-resolved)."""
    coarse = rng.uniform(0, 255, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def paired_folders(tmp_path):
    """Four 64x64 HR images and their MATLAB-bicubic x2 LR images, as BasicSR folders."""
    from basicsr.utils.matlab_functions import imresize

    rng = np.random.default_rng(0)
    hr_dir, lr_dir = tmp_path / 'data' / 'HR', tmp_path / 'data' / 'LRx2'
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for i in range(4):
        hr = smooth_image(rng, 64, 64)
        lr = np.clip(np.round(imresize(hr / 255., 0.5) * 255), 0, 255).astype(np.uint8)
        cv2.imwrite(str(hr_dir / f'img{i}.png'), hr)
        cv2.imwrite(str(lr_dir / f'img{i}.png'), lr)
    return hr_dir, lr_dir


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
