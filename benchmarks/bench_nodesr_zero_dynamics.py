"""NODE-SR with zero dynamics (f = 0) through the real test pipeline on B100 at x1.1 ... x4.0.

    python -m benchmarks.bench_nodesr_zero_dynamics [--b100 ../shared/data/benchmark/B100/HR]

A freshly built NODE-SR model has its last conv at zero, so it returns ``I(t0)``,
the bicubic upscale of the LR image. Run through ``python -m oisr_basicsr.test``
(LR images made on the fly with the Meta-SR protocol, ``I(t0)``, the solve, PSNR
on Y with ``ceil(t)`` pixels shaved), it must reproduce the bicubic row of the
paper's Table 2; this checks the whole evaluation path that the trained models'
numbers go through. Prints a Markdown table.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALES = tuple(round(1 + 0.1 * k, 1) for k in range(1, 31))
# Bicubic row of Table 2 of the ICASSP paper (seeds/003), B100, x1.1 ... x4.0.
PUBLISHED_BICUBIC = (36.56, 35.01, 33.84, 32.93, 32.14, 31.49, 30.90, 30.38, 29.97, 29.55,
                     29.18, 28.87, 28.57, 28.31, 28.13, 27.89, 27.66, 27.51, 27.31, 27.19,
                     26.98, 26.89, 26.59, 26.60, 26.42, 26.35, 26.15, 26.07, 26.01, 25.96)


def options(b100: Path) -> dict:
    """Test options: B100 at every scale, the smallest NODE-VDSR (its f is zero whatever its size)."""
    return {
        'name': 'NODESR_zero_dynamics_B100', 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {f'test_{i + 1}': {'name': f'B100_x{scale}', 'type': 'ContinuousScalePairedDataset',
                                       'dataroot_gt': str(b100), 'test_scale': scale, 'io_backend': {'type': 'disk'}}
                     for i, scale in enumerate(SCALES)},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 2, 'num_layer': 2},
        'ode': {'solver': 'euler', 'num_steps': 1},
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'val': {'save_img': False, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--b100', type=Path, default=REPO_ROOT.parent / 'shared' / 'data' / 'benchmark' / 'B100' / 'HR',
                        help='folder of the B100 HR images')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        option_file = Path(workdir) / 'zero_dynamics.yml'
        option_file.write_text(yaml.safe_dump(options(args.b100.resolve()), sort_keys=False))
        result = subprocess.run([sys.executable, '-m', 'oisr_basicsr.test', '-opt', str(option_file)], cwd=workdir,
                                capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        log = next((Path(workdir) / 'results').glob('*/test_*.log')).read_text()
    print('| t | zero-dynamics NODE-SR | published bicubic | difference |')
    print('|---|---|---|---|')
    differences = []
    for scale, published in zip(SCALES, PUBLISHED_BICUBIC, strict=True):
        measured = float(re.search(rf'Validation B100_x{scale}\s+# psnr: ([0-9.]+)', log).group(1))
        differences.append(measured - published)
        print(f'| {scale} | {measured:.2f} | {published:.2f} | {measured - published:+.2f} |')
    print(f'\nlargest |difference|: {max(map(abs, differences)):.2f} dB; mean difference: '
          f'{sum(differences) / len(differences):+.3f} dB')


if __name__ == '__main__':
    main()
