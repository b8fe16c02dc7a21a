import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


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
