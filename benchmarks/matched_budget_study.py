"""Matched-budget study: EDSR-s, OISR-LF-s and OISR-RK2-s at x2, every seed, learning rate and block init.

    python -m benchmarks.matched_budget_study --workdir ../matched_budget \\
        --train-dirs ../shared/data/train/T91 ../shared/data/train/BSD200 --data-root ../shared/data/benchmark \\
        --iters 20000 --eval-every 5000 --lrs 1e-4 5e-4 --seeds 0 1 2 --inits paper near_identity

The three equal-parameter models of the paper's Table 1 are trained with the package's real trainer
(``python -m oisr_basicsr.train``) on the same sub-images, iterations, batch, patch, optimiser and cosine
schedule as ``benchmarks/bench_small_budget.py`` (whose data preparation and option files this script reuses);
only ``network_g`` differs between runs (``block_init``: ``paper`` or ``near_identity``) together with the
seed and the learning rate. Every ``--eval-every`` iterations the checkpoint is measured on ``--datasets``
with the paper protocol (``oisr compare``: MATLAB-bicubic LR, 8-bit SR, Y, 2 pixels shaved).

Each measurement is appended to ``<workdir>/results.jsonl`` as soon as it exists, so an interrupted study
resumes where it stopped and a grid can be run in parts (e.g. one seed per GPU, each process with its own
``CUDA_VISIBLE_DEVICES`` and ``--seeds``; every run trains on one GPU when there is one). The summary at the end, also
written to ``<workdir>/summary.md``, gives mean and sample standard deviation over seeds per model, init,
learning rate and iteration, with bicubic as the reference row.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks import bench_small_budget as small_budget
from oisr_basicsr.tools.compare import compare, resolve_datasets

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALE = 2
INITS = ('paper', 'near_identity')
MODELS = tuple(small_budget.MODELS)


def run_label(model: str, init: str, lr: float, seed: int) -> str:
    """The experiment name of one run, e.g. ``study_OISR_LF_s_near_identity_lr0.0001_seed0``."""
    return f'study_{model.replace("-", "_")}_{init}_lr{lr:g}_seed{seed}'


def study_train_options(model: str, init: str, lr: float, seed: int, data_dir: Path,
                        args: argparse.Namespace) -> dict:
    """The small-budget options of ``model`` with this run's init, learning rate, seed and checkpoint cadence."""
    run_args = argparse.Namespace(**{**vars(args), 'lr': lr, 'seed': seed})
    options = small_budget.train_options(model, data_dir, run_args)
    options['name'] = run_label(model, init, lr, seed)
    # One GPU per run whatever the machine has (BasicSR would spread a batch over all of them with DataParallel);
    # a multi-GPU machine runs one study process per GPU, each with its own CUDA_VISIBLE_DEVICES and --seeds.
    options['num_gpu'] = int(torch.cuda.is_available())
    options['network_g']['block_init'] = init
    options['logger']['save_checkpoint_freq'] = args.eval_every
    return options


def evaluation_points(iters: int, eval_every: int) -> list[int]:
    """The iterations at which a checkpoint is measured: every ``eval_every`` and the last one."""
    return sorted({*range(eval_every, iters + 1, eval_every), iters})


def load_results(path: Path) -> list[dict]:
    """The measurements recorded so far (one JSON object per line)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(results: list[dict], datasets: list[str]) -> str:
    """Markdown table: mean and sample standard deviation over seeds per (model, init, lr, iteration)."""
    groups: dict[tuple, list[dict]] = {}
    for record in results:
        key = (record['model'], record['init'], record['lr'], record['iter'])
        groups.setdefault(key, []).append(record)
    header = ['Model', 'block_init', 'lr', 'Iteration', 'Seeds'] + [f'{name} PSNR (dB)' for name in datasets]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    order = {model: index for index, model in enumerate(('Bicubic', ) + MODELS)}
    for key in sorted(groups, key=lambda k: (k[2], order.get(k[0], 99), k[1], k[3])):
        records = groups[key]
        cells = []
        for name in datasets:
            values = [record['psnr'][name] for record in records if name in record['psnr']]
            if not values:
                cells.append('-')
            elif len(values) == 1:
                cells.append(f'{values[0]:.2f}')
            else:
                cells.append(f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}')
        seeds = ' '.join(str(record['seed']) for record in sorted(records, key=lambda r: r['seed']))
        model, init, lr, iteration = key
        lines.append(f'| {model} | {init} | {lr:g} | {iteration} | {seeds} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def measure(option_file: Path, datasets: dict[str, Path]) -> dict[str, float]:
    """PSNR per dataset of the model of ``option_file`` (paper protocol, CPU or the GPU when there is one)."""
    result, = compare([option_file], datasets, progress=False)
    return {name: psnr for name, (psnr, _) in result.metrics.items()}


def _record(path: Path, record: dict) -> None:
    with path.open('a') as handle:
        handle.write(json.dumps(record) + '\n')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', type=Path, required=True, help='scratch folder (outside the repository)')
    parser.add_argument('--train-dirs', type=Path, nargs='+', required=True, help='folders of HR training images')
    parser.add_argument('--data-root', type=Path, required=True, help='folder holding <dataset>/HR')
    parser.add_argument('--datasets', nargs='+', default=['Set5', 'Set14', 'B100'])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    parser.add_argument('--inits', nargs='+', default=list(INITS), choices=INITS)
    parser.add_argument('--lrs', type=float, nargs='+', default=[1e-4, 5e-4],
                        help='initial learning rates, cosine-annealed to 1e-6 (default: 1e-4 5e-4)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=20000, help='training iterations per run (default: 20000)')
    parser.add_argument('--eval-every', type=int, default=5000, help='measure a checkpoint every N iterations')
    parser.add_argument('--batch', type=int, default=16, help='batch size (default: 16, the paper\'s)')
    parser.add_argument('--patch', type=int, default=32, help='LR patch size (default: 32; the paper\'s 48 needs '
                        'HR sub-images of 96, larger than T91\'s smallest images)')
    parser.add_argument('--crop-size', type=int, default=72, help='HR sub-image size (default: 72; T91 has 78-pixel '
                        'sides); at least twice --patch')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per process (default: 1)')
    args = parser.parse_args(argv)
    if args.crop_size < args.patch * SCALE:
        parser.error(f'--crop-size {args.crop_size} is smaller than the HR patch {args.patch * SCALE}; '
                     'raise --crop-size or lower --patch')
    if args.eval_every < 1 or args.iters < 1:
        parser.error('--iters and --eval-every must be positive')
    workdir = args.workdir.resolve()
    if REPO_ROOT in (workdir, *workdir.parents):
        parser.error(f'--workdir {workdir} is inside the repository; use a scratch folder outside it')
    args.workdir = workdir
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'OMP_NUM_THREADS': str(args.threads), 'MKL_NUM_THREADS': str(args.threads),
           'PYTHONWARNINGS': 'ignore'}
    datasets = resolve_datasets(args.datasets, args.data_root)
    data_dir = small_budget.prepare_data(args.train_dirs, workdir, args, env)
    results_file = workdir / 'results.jsonl'
    done = {(r['model'], r['init'], r['lr'], r['seed'], r['iter']) for r in load_results(results_file)}

    if not any(r['model'] == 'Bicubic' for r in load_results(results_file)):
        bicubic = small_budget._write_yaml(
            small_budget.test_options('Bicubic', {'type': 'Bicubic', 'upscale': SCALE}, None),
            workdir / 'test_Bicubic.yml')
        _record(results_file, {'model': 'Bicubic', 'init': '-', 'lr': 0.0, 'seed': 0, 'iter': 0,
                               'psnr': measure(bicubic, datasets)})
    points = evaluation_points(args.iters, args.eval_every)
    for lr in args.lrs:
        for seed in args.seeds:
            for init in args.inits:
                for model in args.models:
                    todo = [p for p in points if (model, init, lr, seed, p) not in done]
                    if not todo:
                        continue
                    name = run_label(model, init, lr, seed)
                    models_dir = workdir / 'experiments' / name / 'models'
                    if not (models_dir / 'net_g_latest.pth').is_file():
                        train_file = small_budget._write_yaml(
                            study_train_options(model, init, lr, seed, data_dir, args), workdir / f'train_{name}.yml')
                        begin = time.perf_counter()
                        small_budget._run([sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(train_file)],
                                          workdir, env)
                        print(f'{name}: trained in {(time.perf_counter() - begin) / 60:.1f} min', flush=True)
                    network = {**small_budget.network_options(model), 'block_init': init}
                    for point in todo:
                        weights = models_dir / ('net_g_latest.pth' if point == args.iters else f'net_g_{point}.pth')
                        test_file = small_budget._write_yaml(small_budget.test_options(name, network, weights),
                                                             workdir / f'test_{name}_{point}.yml')
                        psnr = measure(test_file, datasets)
                        _record(results_file, {'model': model, 'init': init, 'lr': lr, 'seed': seed, 'iter': point,
                                               'psnr': psnr})
                        print(f'{name} iteration {point}: ' + ', '.join(f'{k} {v:.2f}' for k, v in psnr.items()),
                              flush=True)
    summary = summarise(load_results(results_file), list(datasets))
    (workdir / 'summary.md').write_text(summary + '\n')
    print(f'budget: {args.iters} iterations x batch {args.batch} x {args.patch}x{args.patch} LR patches per run, '
          f'Adam, cosine to 1e-6, {args.threads} thread(s)')
    print(summary)
    return 0


if __name__ == '__main__':
    sys.exit(main())
