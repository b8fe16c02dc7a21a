"""Plain bicubic at the 30 scales x1.1 ... x4.0 of NODE-SR's Table 2, through the package's test pipeline.

    python -m benchmarks.bench_bicubic_continuous --hr-dir ../shared/data/benchmark/B100/HR

Each HR image becomes an LR image and a reference with the Meta-SR protocol
(:class:`~oisr_basicsr.data.continuous_scale_dataset.ContinuousScalePairedDataset` in test mode), the LR
image is upscaled with :func:`~oisr_basicsr.data.resize.upscale_lr`, rounded to 8 bits, and compared with
BasicSR's ``calculate_psnr`` on Y with ``ceil(t)`` pixels shaved, which equals Meta-SR's PSNR. The table
prints the mean PSNR next to the bicubic row published for B100 (NODE-SR, ICASSP 2022, Table 2).
"""

import argparse
import math
import sys
import time
from pathlib import Path

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch and registers the package's datasets)

# isort: split
# BasicSR 1.4.2 only imports after the patches above, so this block must stay below them.
import numpy as np
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from oisr_basicsr.data.continuous_scale_dataset import DEFAULT_SCALES, ContinuousScalePairedDataset
from oisr_basicsr.data.resize import upscale_lr

# Bicubic on B100, NODE-SR Table 2 (the B100 files used there are 481 px wide, the usual copies 480).
PUBLISHED_B100 = (36.56, 35.01, 33.84, 32.93, 32.14, 31.49, 30.90, 30.38, 29.97, 29.55,
                  29.18, 28.87, 28.57, 28.31, 28.13, 27.89, 27.66, 27.51, 27.31, 27.19,
                  26.98, 26.89, 26.59, 26.60, 26.42, 26.35, 26.15, 26.07, 26.01, 25.96)


def bicubic_psnr(hr_dir: Path, scale: float) -> float:
    """Mean Y PSNR of bicubic upscaling over the images of ``hr_dir`` at scale ``scale`` (Meta-SR protocol)."""
    dataset = ContinuousScalePairedDataset({'phase': 'test', 'dataroot_gt': str(hr_dir), 'test_scale': scale})
    values = []
    for item in dataset:
        sr = upscale_lr(item['lq'][None], item['scale'], item['gt'].shape[-2:])
        values.append(calculate_psnr(tensor2img(sr), tensor2img(item['gt']), crop_border=math.ceil(scale),
                                     test_y_channel=True))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hr-dir', type=Path, required=True, help='folder of B100 HR images')
    args = parser.parse_args(argv)
    if not args.hr_dir.is_dir():
        print(f'error: {args.hr_dir} is not a folder', file=sys.stderr)
        return 2
    start = time.perf_counter()
    print('| t | bicubic (ours) | bicubic (published) | difference |')
    print('|---|---|---|---|')
    differences = []
    for scale, published in zip(DEFAULT_SCALES, PUBLISHED_B100, strict=True):
        ours = bicubic_psnr(args.hr_dir, scale)
        differences.append(ours - published)
        print(f'| {scale:.1f} | {ours:.3f} | {published:.2f} | {ours - published:+.3f} |', flush=True)
    print(f'\nmean difference {np.mean(differences):+.3f} dB, largest {max(differences, key=abs):+.2f} dB; '
          f'{time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
