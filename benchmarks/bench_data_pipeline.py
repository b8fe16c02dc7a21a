"""Data pipeline: samples per second per worker, NODE-SR's on-the-fly I(t) against BasicSR's precomputed pairs.

    python -m benchmarks.bench_data_pipeline --hr-dir ../shared/data/train/BSD200 [--samples 300]

Both datasets read sub-images from LMDB, as the paper recipes do with DIV2K's 480x480 ones; here they are
300x300 (``--sub-image``), as BSD200's 481x321 images allow. The sub-images and their LMDBs are made first,
in a temporary folder, by ``oisr_basicsr.data.preparation.prepare_training_data``:

* ``ContinuousScalePairedDataset`` (``options/train_NODESR_VDSR.yml``): a random 200x200 HR patch, flipped and
  rotated, and its ``I(t)`` for a scale drawn from {1.1, ..., 4.0}, made in the worker;
* ``PairedImageDataset`` (BasicSR): a 200x200 HR patch and its 100x100 x2 LR patch, both read from
  precomputed LMDBs, flipped and rotated.

A DataLoader worker runs one item at a time on one thread, so each dataset's ``__getitem__`` is timed here in
one process on one thread, the two interleaved in rounds; the figure is the median over rounds. The
continuous-scale item is split into its parts (read and decode, crop and augment, ``I(t)``) to show what the
worker spends its time on, and the time of forming ``I(t)`` for a whole batch of 16 in one call (what a model
would do in ``feed_data``) is given per sample for comparison.
"""

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
# BasicSR 1.4.2 only imports after the fixes above, so this block must stay below them.
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment
from basicsr.utils import imfrombytes, img2tensor

from oisr_basicsr.data.continuous_scale_dataset import DEFAULT_SCALES, ContinuousScalePairedDataset
from oisr_basicsr.data.preparation import prepare_training_data
from oisr_basicsr.data.resize import progressive_input

PATCH = 200
BATCH = 16


def build_datasets(hr_dir: Path, workdir: Path,
                   sub_image: int) -> tuple[ContinuousScalePairedDataset, PairedImageDataset]:
    """Sub-image LMDBs of ``hr_dir`` (HR and x2 LR) and the two training datasets reading them."""
    prepare_training_data(hr_dir, workdir, 'bench', scales=[2], crop_size=sub_image, step=sub_image // 2,
                          num_workers=1)
    continuous = ContinuousScalePairedDataset({
        'phase': 'train', 'dataroot_gt': str(workdir / 'bench_HR_sub.lmdb'), 'io_backend': {'type': 'lmdb'},
        'gt_size': PATCH, 'use_hflip': True, 'use_rot': True, 'scales': list(DEFAULT_SCALES)})
    # LMDB opens an environment once per process; the paired dataset gets its own copy of the HR database.
    shutil.copytree(workdir / 'bench_HR_sub.lmdb', workdir / 'paired_HR_sub.lmdb')
    paired = PairedImageDataset({
        'phase': 'train', 'scale': 2, 'dataroot_gt': str(workdir / 'paired_HR_sub.lmdb'),
        'dataroot_lq': str(workdir / 'bench_LR_bicubic_X2_sub.lmdb'), 'io_backend': {'type': 'lmdb'},
        'filename_tmpl': '{}', 'gt_size': PATCH, 'use_hflip': True, 'use_rot': True})
    return continuous, paired


def continuous_parts(dataset: ContinuousScalePairedDataset) -> dict[str, Callable[[int], object]]:
    """The continuous-scale item's parts, each a function of the index, as ``__getitem__`` runs them."""
    dataset[0]  # opens the dataset's LMDB, which the parts read through
    client = dataset.file_client
    state = {}

    def read(index: int) -> None:
        state['img'] = imfrombytes(client.get(dataset.paths[index], 'gt'), float32=True)

    def crop(_: int) -> None:
        img = state['img']
        top, left = random.randint(0, img.shape[0] - PATCH), random.randint(0, img.shape[1] - PATCH)
        state['gt'] = img2tensor(augment(img[top:top + PATCH, left:left + PATCH], True, True), bgr2rgb=True)

    def make_input(_: int) -> None:
        progressive_input(state['gt'][None], random.choice(DEFAULT_SCALES))

    return {'read and decode': read, 'crop and augment': crop, 'I(t)': make_input}


def time_rounds(tasks: dict[str, Callable[[int], object]], num_items: int, samples: int,
                rounds: int) -> dict[str, float]:
    """Median seconds per call of each task, the tasks interleaved in ``rounds`` rounds of ``samples`` calls."""
    per_round = {name: [] for name in tasks}
    rng = random.Random(0)
    for _ in range(rounds):
        indices = [rng.randrange(num_items) for _ in range(samples)]
        for name, task in tasks.items():
            start = time.perf_counter()
            for index in indices:
                task(index)
            per_round[name].append((time.perf_counter() - start) / samples)
    return {name: statistics.median(times) for name, times in per_round.items()}


def batched_input_seconds(samples: int) -> float:
    """Seconds per sample of forming ``I(t)`` for batches of 16 patches with mixed scales in one call."""
    rng = random.Random(0)
    batches = max(1, samples // BATCH)
    gt = torch.rand(BATCH, 3, PATCH, PATCH)
    start = time.perf_counter()
    for _ in range(batches):
        progressive_input(gt, torch.tensor([rng.choice(DEFAULT_SCALES) for _ in range(BATCH)]))
    return (time.perf_counter() - start) / (batches * BATCH)


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr-dir', type=Path, required=True, help='folder of HR training images')
    parser.add_argument('--sub-image', type=int, default=300, help='side of the LMDB sub-images (even, >= 200)')
    parser.add_argument('--samples', type=int, default=200, help='items per dataset and round')
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args(argv)
    if not args.hr_dir.is_dir():
        print(f'error: --hr-dir {args.hr_dir} is not a folder', file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    random.seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        continuous, paired = build_datasets(args.hr_dir, Path(workdir), args.sub_image)
        tasks = {'ContinuousScalePairedDataset': continuous.__getitem__, 'PairedImageDataset': paired.__getitem__,
                 **continuous_parts(continuous)}
        seconds = time_rounds(tasks, len(continuous), args.samples, args.rounds)
        batched = batched_input_seconds(args.samples)

    baseline = seconds['PairedImageDataset']
    print(f'{len(continuous)} sub-images of {args.sub_image}x{args.sub_image}; {PATCH}x{PATCH} HR patches; one '
          f'thread; median of {args.rounds} rounds of {args.samples} items.\n')
    print('| Work per sample | ms | samples / s per worker | time vs PairedImageDataset |')
    print('|---|---|---|---|')
    for name, value in seconds.items():
        label = name if name in ('ContinuousScalePairedDataset', 'PairedImageDataset') else f'... {name}'
        print(f'| {label} | {value * 1e3:.2f} | {1 / value:.0f} | {value / baseline:.2f} |')
    print(f'| I(t) for a batch of {BATCH} in one call, per sample | {batched * 1e3:.2f} | {1 / batched:.0f} | '
          f'{batched / baseline:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
