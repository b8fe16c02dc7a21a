"""Train a small OISR model on sample images for a few minutes on the CPU and compare it with bicubic.

    oisr quickstart [--iters 600] [--workdir quickstart_output]

Everything runs through the package's real entry points: the sample photos
that scikit-image ships become an HR/LR training set and a held-out test set,
``oisr_basicsr.train`` trains an OISR-LF model (x2) with BasicSR's pipeline,
and ``oisr_basicsr.test`` evaluates it and plain bicubic with BasicSR's PSNR /
SSIM (Y channel, 2 pixels shaved). The last lines printed are the table.
"""

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml
from skimage import data as sample_images

from ..data.preparation import extract_subimages, make_benchmark_folders, make_lr_images
from ..errors import error_status
from ..outputs import write_image, write_text
from .arguments import ArgumentParser, positive_int

SCALE = 2
SUBIMAGE_SIZE = 128
TRAIN_IMAGES = ('astronaut', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field')
TEST_IMAGES = ('chelsea', 'stereo_motorcycle')
_METRIC_LINE = re.compile(r'# (psnr|ssim): ([0-9.]+)')


def _sample_image(name: str) -> np.ndarray:
    image = getattr(sample_images, name)()
    if isinstance(image, tuple):  # a stereo pair: keep the left view
        image = image[0]
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def write_sample_data(root: Path) -> None:
    """HR/LR training pairs and a benchmark-style test folder from scikit-image's photos.

    Training images are cut into sub-images first, as for DIV2K: reading a whole
    photo for every 64x64 patch would make data loading the bottleneck.
    """
    photos = root / 'train' / 'photos'
    photos.mkdir(parents=True)
    for name in TRAIN_IMAGES:
        write_image(photos / f'{name}.png', _sample_image(name))
    train_hr = root / 'train' / 'HR'
    extract_subimages(photos, train_hr, crop_size=SUBIMAGE_SIZE, step=SUBIMAGE_SIZE // 2)
    make_lr_images(train_hr, root / 'train' / f'LRbicx{SCALE}', SCALE)
    test_hr = root / 'test' / 'HR'
    test_hr.mkdir(parents=True)
    for name in TEST_IMAGES:
        write_image(test_hr / f'{name}.png', _sample_image(name))
    make_benchmark_folders(test_hr, root / 'test', scales=(SCALE, ))


def _metrics(crop_border: int) -> dict:
    return {
        metric: {'type': f'calculate_{metric}', 'crop_border': crop_border, 'test_y_channel': True}
        for metric in ('psnr', 'ssim')
    }


def _test_dataset(data_root: Path) -> dict:
    return {
        'name': 'samples',
        'type': 'PairedImageDataset',
        'dataroot_gt': str(data_root / 'test' / 'GTmod12'),
        'dataroot_lq': str(data_root / 'test' / f'LRbicx{SCALE}'),
        'io_backend': {'type': 'disk'},
    }


def train_options(data_root: Path, iters: int) -> dict:
    """A small OISR-LF (2 blocks, 32 features) trained with BasicSR's SRModel on the CPU."""
    return {
        'name': 'quickstart_OISR_LF_x2',
        'model_type': 'SRModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'samples',
                'type': 'PairedImageDataset',
                'dataroot_gt': str(data_root / 'train' / 'HR'),
                'dataroot_lq': str(data_root / 'train' / f'LRbicx{SCALE}'),
                'io_backend': {'type': 'disk'},
                'gt_size': 64,
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 16,
                'dataset_enlarge_ratio': 10,
            },
            'val': _test_dataset(data_root),
        },
        'network_g': {
            'type': 'OISR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 2, 'upscale': SCALE,
            'scheme': 'lf', 'g_variant': 'v2'
        },
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'eta_min': 1e-5},
            'total_iter': iters,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {'val_freq': iters, 'save_img': False, 'metrics': _metrics(SCALE)},
        'logger': {'print_freq': 50, 'save_checkpoint_freq': iters, 'use_tb_logger': True},
    }


def test_options(name: str, data_root: Path, network: dict, weights: Path | None) -> dict:
    return {
        'name': name,
        'model_type': 'SRModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {'test_1': _test_dataset(data_root)},
        'network_g': network,
        'path': {'pretrain_network_g': str(weights) if weights else None, 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'metrics': _metrics(SCALE)},
    }


def _run(module: str, options: dict, option_file: Path, workdir: Path) -> None:
    write_text(option_file, yaml.safe_dump(options, sort_keys=False))
    subprocess.run([sys.executable, '-m', module, '-opt', str(option_file)], cwd=workdir, check=True)


def read_test_metrics(results_dir: Path) -> dict[str, float]:
    """PSNR and SSIM from the newest log that BasicSR's test pipeline wrote into ``results_dir``."""
    log = max(results_dir.glob('test_*.log'), key=lambda path: path.stat().st_mtime)
    return {name: float(value) for name, value in _METRIC_LINE.findall(log.read_text())}


def run(workdir: Path, iters: int) -> dict[str, dict[str, float]]:
    """Train and evaluate; returns ``{'Bicubic': {'psnr': .., 'ssim': ..}, 'OISR-LF (small)': {...}}``."""
    data_root = workdir / 'data'
    if data_root.exists():
        raise FileExistsError(f'{workdir} already holds a quick-start run (its table came from '
                              f'{workdir / "results"}); remove the folder to run it again, or pass another --workdir.')
    workdir.mkdir(parents=True, exist_ok=True)
    write_sample_data(data_root)

    train_opt = train_options(data_root, iters)
    _run('oisr_basicsr.train', train_opt, workdir / 'train.yml', workdir)
    weights = workdir / 'experiments' / train_opt['name'] / 'models' / 'net_g_latest.pth'

    rows = {}
    for label, name, network, path in (
        ('Bicubic', 'quickstart_bicubic_x2', {'type': 'Bicubic', 'upscale': SCALE}, None),
        ('OISR-LF (small)', 'quickstart_OISR_LF_x2', train_opt['network_g'], weights),
    ):
        _run('oisr_basicsr.test', test_options(name, data_root, network, path), workdir / f'test_{name}.yml',
             workdir)
        rows[label] = read_test_metrics(workdir / 'results' / name)
    return rows


def format_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [f'x{SCALE} on {", ".join(TEST_IMAGES)} (Y channel, {SCALE} px shaved)',
             '| Method | PSNR (dB) | SSIM |', '|---|---|---|']
    lines += [f'| {label} | {m["psnr"]:.2f} | {m["ssim"]:.4f} |' for label, m in rows.items()]
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the quick start from the command line; returns the exit status (2 when a step fails)."""
    parser = ArgumentParser(prog='oisr quickstart', description=__doc__)
    parser.add_argument('--workdir', type=Path, default=Path('quickstart_output'))
    parser.add_argument('--iters', type=positive_int, default=600, help='training iterations (default: 600)')
    args = parser.parse_args(argv)
    try:
        rows = run(args.workdir.resolve(), args.iters)
    except FileExistsError as error:
        return error_status(error)
    except subprocess.CalledProcessError as error:  # the step printed its own error above
        print(f'error: the quick start stopped: {" ".join(error.cmd[1:])} exited with status {error.returncode}.',
              file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
