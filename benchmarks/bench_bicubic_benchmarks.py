"""Bicubic upsampling on the SR benchmarks through the package's test pipeline, against the published table.

    python -m benchmarks.bench_bicubic_benchmarks --data-root ../shared/data/benchmark --datasets Set5 Set14 B100

For each scale this runs ``python -m oisr_basicsr.test`` on ``options/test_Bicubic_x{s}.yml`` with the
datasets pointed at ``<data-root>/<name>/HR`` (BenchmarkHRDataset: modcrop to the scale, MATLAB-bicubic
LR, 8-bit SR, BasicSR's PSNR / SSIM on Y with ``s`` pixels shaved), once per protocol of the dataset,
and prints the numbers next to the published bicubic baseline (VDSR / EDSR / RCAN):

- ``matlab_y`` (the option files' protocol): 8-bit Y channel, bicubic on Y alone, LR not rounded, a
  grayscale file is its own Y; the protocol of the SRCNN / VDSR MATLAB scripts that made the table.
- ``rgb`` (the protocol of the networks): 8-bit RGB LR, BasicSR's unrounded Y of the 8-bit RGB SR; a
  grayscale file is read as three equal channels, so its Y is ``16 + 219/255 * gray``.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from oisr_basicsr.data.benchmark_hr_dataset import PROTOCOLS

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


def run_pipeline(data_root: Path, datasets: list[str], scale: int, protocol: str,
                 workdir: Path) -> dict[str, tuple[float, float]]:
    """PSNR / SSIM per dataset from ``python -m oisr_basicsr.test`` on ``options/test_Bicubic_x{scale}.yml``.

    Args:
        data_root: Folder holding ``<name>/HR`` for every dataset.
        datasets: Benchmark names, e.g. ``['Set5', 'Set14']``.
        scale: Upscaling factor.
        protocol: BenchmarkHRDataset's ``protocol`` for every dataset.
        workdir: Where the option file and BasicSR's ``results/`` go.
    """
    opt = yaml.safe_load((REPO_ROOT / 'options' / f'test_Bicubic_x{scale}.yml').read_text())
    template = next(iter(opt['datasets'].values()))
    opt['datasets'] = {f'test_{i + 1}': {**template, 'name': name, 'dataroot_gt': str(data_root / name / 'HR'),
                                         'protocol': protocol}
                       for i, name in enumerate(datasets)}
    option_file = workdir / f'test_Bicubic_x{scale}.yml'
    option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
    result = subprocess.run([sys.executable, '-m', 'oisr_basicsr.test', '-opt', str(option_file)], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'the test entry point failed:\n{result.stderr[-3000:]}')
    log = next((workdir / 'results' / opt['name']).glob('test_*.log')).read_text()
    return {name: (float(psnr), float(ssim)) for name, psnr, ssim in _METRIC_LINES.findall(log)}


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

    print('| Dataset | Scale | Published | ' + ' | '.join(f'{protocol} PSNR / SSIM | diff' for protocol in PROTOCOLS)
          + ' |')
    print('|---|---|---|' + '---|---|' * len(PROTOCOLS))
    for scale in args.scales:
        measured = {}
        for protocol in PROTOCOLS:
            with tempfile.TemporaryDirectory() as workdir:
                measured[protocol] = run_pipeline(args.data_root.resolve(), args.datasets, scale, protocol,
                                                  Path(workdir))
        for name in args.datasets:
            published_psnr, published_ssim = PUBLISHED[name][scale]
            cells = [f'{measured[p][name][0]:.4f} / {measured[p][name][1]:.4f} | '
                     f'{measured[p][name][0] - published_psnr:+.4f}' for p in PROTOCOLS]
            print(f'| {name} | x{scale} | {published_psnr:.2f} / {published_ssim:.4f} | ' + ' | '.join(cells) + ' |',
                  flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
