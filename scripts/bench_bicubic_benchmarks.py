"""Bicubic upsampling on the SR benchmarks through the package's test pipeline, against the published table.

    python scripts/bench_bicubic_benchmarks.py --data-root ../shared/data/benchmark --datasets Set5 Set14 B100

For each scale this runs ``python -m oisr_basicsr.test`` on ``options/test_Bicubic_x{s}.yml`` with the
datasets pointed at ``<data-root>/<name>/HR`` (BenchmarkHRDataset: modcrop to the scale, MATLAB-bicubic
8-bit LR, BasicSR's PSNR / SSIM on Y with ``s`` pixels shaved), and prints its numbers next to the
published bicubic baseline (VDSR / EDSR / RCAN).

The published baseline was computed by the SRCNN / VDSR MATLAB scripts, which differ from the
pipeline above in two ways: the Y channel comes from MATLAB's ``rgb2ycbcr`` on 8-bit RGB, so it is
rounded to integers, and bicubic is applied to that Y channel alone (LR not rounded); a grayscale
image (Set14's ``bridge.png``) is its own Y channel, whereas BasicSR reads it as three equal RGB
channels and measures ``16 + 219/255 * gray``. The column "MATLAB-script protocol" recomputes the
baseline that way, from the same HR files and the same resizer, to show where the differences come
from.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

from oisr_basicsr.data.preparation import IMAGE_EXTENSIONS
from oisr_basicsr.data.resize import modcrop

# isort: split
from basicsr.metrics import calculate_psnr
from basicsr.utils import bgr2ycbcr
from basicsr.utils.matlab_functions import imresize

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALES = (2, 3, 4)

# PSNR (dB) / SSIM of bicubic upsampling as published (VDSR Table 3, EDSR, RCAN Table 3).
PUBLISHED = {
    'Set5': {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    'Set14': {2: (30.24, 0.8688), 3: (27.55, 0.7742), 4: (26.00, 0.7027)},
    'B100': {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
    'Urban100': {2: (26.88, 0.8403), 3: (24.46, 0.7349), 4: (23.14, 0.6577)},
}
_METRIC_LINES = re.compile(r'Validation (\S+)\n\t # psnr: ([0-9.]+)[^\n]*\n\t # ssim: ([0-9.]+)')


def run_pipeline(data_root: Path, datasets: list[str], scale: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """PSNR / SSIM per dataset from ``python -m oisr_basicsr.test`` on ``options/test_Bicubic_x{scale}.yml``.

    Args:
        data_root: Folder holding ``<name>/HR`` for every dataset.
        datasets: Benchmark names, e.g. ``['Set5', 'Set14']``.
        scale: Upscaling factor.
        workdir: Where the option file and BasicSR's ``results/`` go.
    """
    opt = yaml.safe_load((REPO_ROOT / 'options' / f'test_Bicubic_x{scale}.yml').read_text())
    template = next(iter(opt['datasets'].values()))
    opt['datasets'] = {f'test_{i + 1}': {**template, 'name': name, 'dataroot_gt': str(data_root / name / 'HR')}
                       for i, name in enumerate(datasets)}
    option_file = workdir / f'test_Bicubic_x{scale}.yml'
    option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
    result = subprocess.run([sys.executable, '-m', 'oisr_basicsr.test', '-opt', str(option_file)], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'the test entry point failed:\n{result.stderr[-3000:]}')
    log = next((workdir / 'results' / opt['name']).glob('test_*.log')).read_text()
    return {name: (float(psnr), float(ssim)) for name, psnr, ssim in _METRIC_LINES.findall(log)}


def matlab_script_psnr(hr_dir: Path, scale: int) -> float:
    """Mean bicubic PSNR as the SRCNN / VDSR MATLAB scripts compute it (see the module docstring).

    Args:
        hr_dir: Folder of HR images.
        scale: Upscaling factor.
    """
    psnrs = []
    for path in sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        # bgr2ycbcr on uint8 returns MATLAB's rounded 8-bit Y.
        y = img if img.ndim == 2 else bgr2ycbcr(img, y_only=True)
        y = modcrop(y, scale).astype(np.float64) / 255.
        sr = np.clip(np.round(imresize(imresize(y, 1 / scale), scale) * 255.), 0, 255)
        psnrs.append(calculate_psnr(sr[..., None], y[..., None] * 255., crop_border=scale))
    return float(np.mean(psnrs))


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', type=Path, required=True, help='folder holding <name>/HR per dataset')
    parser.add_argument('--datasets', nargs='+', default=['Set5', 'Set14', 'B100'], choices=list(PUBLISHED))
    parser.add_argument('--scales', nargs='+', type=int, default=list(SCALES), choices=SCALES)
    args = parser.parse_args(argv)
    missing = [name for name in args.datasets if not (args.data_root / name / 'HR').is_dir()]
    if missing:
        print(f'error: no HR folder under {args.data_root} for {", ".join(missing)}', file=sys.stderr)
        return 2

    print('| Dataset | Scale | Pipeline PSNR / SSIM | Published | PSNR diff | MATLAB-script protocol PSNR | diff |')
    print('|---|---|---|---|---|---|---|')
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as workdir:
            measured = run_pipeline(args.data_root.resolve(), args.datasets, scale, Path(workdir))
        for name in args.datasets:
            psnr, ssim = measured[name]
            published_psnr, published_ssim = PUBLISHED[name][scale]
            script_psnr = matlab_script_psnr(args.data_root / name / 'HR', scale)
            print(f'| {name} | x{scale} | {psnr:.4f} / {ssim:.4f} | {published_psnr:.2f} / {published_ssim:.4f} | '
                  f'{psnr - published_psnr:+.4f} | {script_psnr:.4f} | {script_psnr - published_psnr:+.4f} |',
                  flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
