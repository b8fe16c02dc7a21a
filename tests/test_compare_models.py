"""scripts/compare_models.py: tables, CSV and plot for OISR, BasicSR and parameter-free models; PSNR checked
against an independent implementation of the paper protocol."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import load_script, smooth_image

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.utils.matlab_functions import imresize

from oisr_basicsr.archs.bicubic_arch import Bicubic
from oisr_basicsr.archs.oisr_arch import OISR

pytest.importorskip('matplotlib')

OISR_NET = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}
EDSR_NET = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}


@pytest.fixture(scope='module')
def compare_models():
    return load_script('compare_models')



def _option_file(folder: Path, name: str, network: dict, weights: Path | None) -> Path:
    path = folder / f'{name}.yml'
    path.write_text(yaml.safe_dump({'name': name, 'model_type': 'SRModel', 'scale': 2, 'network_g': network,
                                    'path': {'pretrain_network_g': str(weights) if weights else None}}))
    return path


@pytest.fixture
def setup(tmp_path):
    """Two datasets (one in the <root>/<name>/HR layout, one plain with a grayscale image) and three models."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'datasets'
    tiny_a = root / 'TinyA' / 'HR'
    tiny_b = root / 'TinyB'
    tiny_a.mkdir(parents=True)
    tiny_b.mkdir(parents=True)
    # Odd sizes, so that the crop to a multiple of the scale matters.
    cv2.imwrite(str(tiny_a / 'a.png'), smooth_image(rng, 31, 36))
    cv2.imwrite(str(tiny_a / 'b.png'), smooth_image(rng, 28, 27))
    cv2.imwrite(str(tiny_b / 'c.png'), smooth_image(rng, 24, 24))
    cv2.imwrite(str(tiny_b / 'gray.png'), smooth_image(rng, 20, 22)[..., 1])

    torch.manual_seed(0)
    oisr = OISR(**{k: v for k, v in OISR_NET.items() if k != 'type'}).eval()
    weights = tmp_path / 'oisr.pth'
    torch.save({'params': oisr.state_dict()}, weights)
    option_files = [_option_file(tmp_path, 'tiny_OISR', OISR_NET, weights),
                    _option_file(tmp_path, 'tiny_EDSR', EDSR_NET, None),
                    _option_file(tmp_path, 'bicubic', {'type': 'Bicubic', 'upscale': 2}, None)]
    return root, option_files, oisr


def _independent_psnr(net: OISR, hr_dir: Path, scale: int) -> float:
    """The paper protocol written out with numpy and BasicSR's MATLAB imresize only."""
    values = []
    for path in sorted(hr_dir.iterdir()):
        hr = cv2.imread(str(path))
        hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
        lr = np.clip(np.round(imresize(hr / 255., 1 / scale) * 255), 0, 255).astype(np.uint8)
        lq = torch.from_numpy(lr[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
        with torch.inference_mode():
            sr_rgb = net(lq)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        sr = np.round(sr_rgb[..., ::-1] * 255)
        # BT.601 luma of 8-bit BGR, in [16, 235].
        luma = [img.astype(np.float64) @ np.array([24.966, 128.553, 65.481]) / 255 + 16 for img in (sr, hr)]
        diff = (luma[0] - luma[1])[scale:-scale, scale:-scale]
        values.append(10 * np.log10(255**2 / np.mean(diff**2)))
    return float(np.mean(values))


def test_outputs_columns_and_psnr(tmp_path, setup, compare_models, capsys, one_thread):
    root, option_files, oisr = setup
    output_dir = tmp_path / 'comparison'
    status = compare_models.main(['-opt', *map(str, option_files), '--datasets', 'TinyA', 'TinyB', '--data-root',
                                  str(root), '--output-dir', str(output_dir), '--device', 'cpu',
                                  '--latency-devices', 'cpu', '--latency-size', '32', '32', '--latency-runs', '2',
                                  '--warmup', '0', '--allow-random', '--no-progress'])
    assert status == 0, capsys.readouterr().err

    with (output_dir / 'comparison.csv').open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ['model', 'arch', 'scale', 'weights', 'params', 'macs_720p', 'latency_cpu_ms',
                             'TinyA_psnr', 'TinyA_ssim', 'TinyB_psnr', 'TinyB_ssim']
    assert [(r['model'], r['arch']) for r in rows] == [('tiny_OISR', 'OISR'), ('tiny_EDSR', 'EDSR'),
                                                       ('bicubic', 'Bicubic')]
    oisr_row, edsr_row, bicubic_row = rows
    assert int(oisr_row['params']) == sum(p.numel() for p in oisr.parameters())
    # MACs are conv weights times output positions; the 1280x720 output makes them large even for 8 features.
    assert int(oisr_row['macs_720p']) > 1e9 and bicubic_row['params'] == bicubic_row['macs_720p'] == '0'
    assert edsr_row['weights'] == 'none' and float(oisr_row['latency_cpu_ms']) > 0
    for row in rows:
        for name in ('TinyA', 'TinyB'):
            assert 5 < float(row[f'{name}_psnr']) < 80 and 0 < float(row[f'{name}_ssim']) <= 1
    # Smooth images are easy for bicubic and impossible for random weights.
    assert float(bicubic_row['TinyA_psnr']) > float(oisr_row['TinyA_psnr']) + 5

    assert float(oisr_row['TinyA_psnr']) == pytest.approx(_independent_psnr(oisr, root / 'TinyA' / 'HR', 2), abs=1e-3)
    # A grayscale file is measured as the test pipeline measures it: three equal channels, then Y.
    bicubic_gray = _independent_psnr(Bicubic(upscale=2), root / 'TinyB', 2)
    assert float(bicubic_row['TinyB_psnr']) == pytest.approx(bicubic_gray, abs=1e-3)

    markdown = (output_dir / 'comparison.md').read_text()
    assert markdown.splitlines()[0] == ('| Model | Scale | Params | MACs (720p) | CPU latency (ms) | '
                                        'TinyA PSNR / SSIM | TinyB PSNR / SSIM |')
    assert f'| tiny_OISR | x2 | 0.01M | {int(oisr_row["macs_720p"]) / 1e9:.1f}G |' in markdown
    plot = cv2.imread(str(output_dir / 'psnr_vs_macs.png'))
    assert plot is not None and plot.shape[1] > plot.shape[0] > 100  # one panel per dataset, side by side


def test_bad_inputs_fail_fast(tmp_path, setup, compare_models, capsys):
    root, option_files, _ = setup
    args = ['--data-root', str(root), '--output-dir', str(tmp_path / 'out'), '--latency-devices']
    assert compare_models.main(['-opt', str(option_files[0]), '--datasets', 'Missing', *args]) == 2
    assert 'dataset Missing: none of' in capsys.readouterr().err
    # An untrained network is an error unless asked for, and it is found before any dataset is evaluated.
    assert compare_models.main(['-opt', *map(str, option_files), '--datasets', 'TinyA', *args]) == 2
    assert 'no weights' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
