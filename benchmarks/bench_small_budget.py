"""A small-budget, equal-footing comparison of EDSR-s, OISR-LF-s and OISR-RK2-s at x2, from scratch on the CPU.

    python -m benchmarks.bench_small_budget --workdir ../small_budget \\
        --train-dirs ../shared/data/train/T91 ../shared/data/train/BSD200 --data-root ../shared/data/benchmark

It runs everything through the package's real tools, in ``--workdir`` (outside the repository):

1. ``oisr prepare-data train``: the HR images of ``--train-dirs`` (T91 + BSD200, the "291" set)
   cut into ``--crop-size`` sub-images, their MATLAB-bicubic x2 LR versions, both as LMDBs;
2. ``python -m oisr_basicsr.train``, once per model: same data, seed, iterations, batch, patch size,
   optimiser and schedule; the three networks have (almost) the same parameters (1.37M);
3. ``oisr compare``: parameters, MACs, CPU latency and PSNR / SSIM (paper protocol) on
   ``--datasets``, with plain bicubic as a reference row.

The last lines printed are the comparison table. Training and evaluation run with ``--threads``
torch threads per process (on a small shared machine one thread is often faster than two).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALE = 2
# The three equal-parameter models of the paper's Table 1 ablation, as OISR configurations.
MODELS = {
    'EDSR-s': dict(scheme='euler', g_variant='edsr', num_block=16, learnable_coefficients=False),
    'OISR-LF-s': dict(scheme='lf', g_variant='v2', num_block=8),
    'OISR-RK2-s': dict(scheme='rk2', g_variant='v3', num_block=8),
}
DATA_NAME = 'T91_BSD200'
# The package's ``oisr`` command, run by this interpreter (so also where the console script is not on PATH).
OISR = [sys.executable, '-m', 'oisr_cli']


def network_options(model: str) -> dict:
    """``network_g`` of one of :data:`MODELS` at x2 with 64 features."""
    return {'type': 'OISR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'upscale': SCALE, **MODELS[model]}


def run_name(model: str) -> str:
    """The experiment name of a model, e.g. ``small_budget_OISR_LF_s_x2``."""
    return f'small_budget_{model.replace("-", "_")}_x{SCALE}'


def train_options(model: str, data_dir: Path, args: argparse.Namespace) -> dict:
    """BasicSR training options for one model; everything but ``network_g`` is shared by all three."""
    return {
        'name': run_name(model),
        'model_type': 'SRModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': args.seed,
        'datasets': {
            'train': {
                'name': DATA_NAME,
                'type': 'PairedImageDataset',
                'dataroot_gt': str(data_dir / f'{DATA_NAME}_HR_sub.lmdb'),
                'dataroot_lq': str(data_dir / f'{DATA_NAME}_LR_bicubic_X{SCALE}_sub.lmdb'),
                'filename_tmpl': '{}',
                'io_backend': {'type': 'lmdb'},
                'gt_size': args.patch * SCALE,
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': args.batch,
                'dataset_enlarge_ratio': 1,
            },
        },
        'network_g': network_options(model),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': args.lr, 'weight_decay': 0, 'betas': [0.9, 0.999], 'eps': 1e-8},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [args.iters], 'eta_min': 1e-6},
            'total_iter': args.iters,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'logger': {'print_freq': max(1, args.iters // 10), 'save_checkpoint_freq': args.iters,
                   'use_tb_logger': False},
    }


def test_options(name: str, network: dict, weights: Path | None) -> dict:
    """The option file ``oisr compare`` reads: name, scale, network and weights."""
    return {'name': name, 'model_type': 'SRModel', 'scale': SCALE, 'network_g': network,
            'path': {'pretrain_network_g': str(weights) if weights else None, 'strict_load_g': True}}


def _run(command: list[str], workdir: Path, env: dict) -> None:
    print('+', ' '.join(command), flush=True)
    subprocess.run(command, cwd=workdir, env=env, check=True)


def _write_yaml(options: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def prepare_data(train_dirs: list[Path], workdir: Path, args: argparse.Namespace, env: dict) -> Path:
    """Sub-images, LR images and LMDBs of all ``train_dirs`` in ``workdir/data`` (kept across runs)."""
    data_dir = workdir / 'data'
    if (data_dir / f'{DATA_NAME}_HR_sub.lmdb').is_dir():
        print(f'reusing the training data in {data_dir}')
        return data_dir
    # oisr prepare-data reads one folder; link the images of every set into it.
    merged = workdir / 'train_HR'
    merged.mkdir(parents=True, exist_ok=True)
    for folder in train_dirs:
        for image in sorted(folder.iterdir()):
            link = merged / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
    _run([*OISR, 'prepare-data', 'train', '--input', str(merged),
          '--output', str(data_dir), '--name', DATA_NAME, '--scales', str(SCALE), '--crop-size',
          str(args.crop_size), '--step', str(args.crop_size)], workdir, env)
    return data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', type=Path, required=True, help='scratch folder (outside the repository)')
    parser.add_argument('--train-dirs', type=Path, nargs='+', required=True, help='folders of HR training images')
    parser.add_argument('--data-root', type=Path, required=True, help='folder holding <dataset>/HR')
    parser.add_argument('--datasets', nargs='+', default=['Set5', 'Set14', 'B100'])
    parser.add_argument('--iters', type=int, default=300, help='training iterations per model (default: 300)')
    parser.add_argument('--batch', type=int, default=8, help='batch size (default: 8)')
    parser.add_argument('--patch', type=int, default=24, help='LR patch size (default: 24; HR 48)')
    parser.add_argument('--lr', type=float, default=5e-4, help='initial learning rate, cosine-annealed to 1e-6 '
                        '(default: 5e-4)')
    parser.add_argument('--crop-size', type=int, default=72, help='HR sub-image size; T91 has 78-pixel sides '
                        '(default: 72)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1, help='torch threads per process (default: 1)')
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    if REPO_ROOT in (workdir, *workdir.parents):
        parser.error(f'--workdir {workdir} is inside the repository; use a scratch folder outside it')
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'OMP_NUM_THREADS': str(args.threads), 'MKL_NUM_THREADS': str(args.threads),
           'PYTHONWARNINGS': 'ignore'}

    start = time.perf_counter()
    data_dir = prepare_data(args.train_dirs, workdir, args, env)
    timings = {'data preparation': time.perf_counter() - start}

    option_files = [_write_yaml(test_options('Bicubic', {'type': 'Bicubic', 'upscale': SCALE}, None),
                                workdir / 'test_Bicubic.yml')]
    for model in MODELS:
        train_file = _write_yaml(train_options(model, data_dir, args), workdir / f'train_{run_name(model)}.yml')
        weights = workdir / 'experiments' / run_name(model) / 'models' / 'net_g_latest.pth'
        if weights.is_file():
            print(f'reusing {weights}')
        else:
            begin = time.perf_counter()
            _run([sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(train_file)], workdir, env)
            timings[f'training {model}'] = time.perf_counter() - begin
        option_files.append(_write_yaml(test_options(model, network_options(model), weights),
                                        workdir / f'test_{run_name(model)}.yml'))

    begin = time.perf_counter()
    _run([*OISR, 'compare', '-opt', *map(str, option_files),
          '--datasets', *args.datasets, '--data-root', str(args.data_root.resolve()), '--output-dir',
          str(workdir / 'comparison'), '--device', 'cpu', '--latency-devices', 'cpu', '--latency-size', '256', '256',
          '--latency-runs', '3', '--warmup', '1', '--no-progress'], workdir, env)
    timings['evaluation'] = time.perf_counter() - begin
    print(f'budget: {args.iters} iterations x batch {args.batch} x {args.patch}x{args.patch} LR patches per model, '
          f'Adam lr {args.lr:g} cosine to 1e-6, seed {args.seed}, {args.threads} thread(s)')
    print('wall time: ' + ', '.join(f'{step} {seconds / 60:.1f} min' for step, seconds in timings.items()))
    print((workdir / 'comparison' / 'comparison.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
