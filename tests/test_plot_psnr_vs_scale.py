"""oisr plot-scales: a zero-dynamics NODE-SR model scores exactly its bicubic input; PNG, CSV, errors."""

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, smooth_image

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.metrics import calculate_psnr
from basicsr.utils.matlab_functions import imresize

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.data.continuous_scale_dataset import benchmark_pair
from oisr_basicsr.tools import plot_scales
from oisr_cli.commands import plot_scales as cli

pytest.importorskip('matplotlib')

NET = {'type': 'NODEVDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_layer': 3}
SCALES = (2.5, 1.15, 6.0)  # seen, unseen, above x4 (LIIF protocol)


@pytest.fixture(scope='module')
def script():
    return plot_scales


@pytest.fixture
def setup(tmp_path):
    """Two small HR images, a fresh NODEVDSR checkpoint (last conv zero: f = 0) and a NODE-SR option file."""
    rng = np.random.default_rng(0)
    hr_dir = tmp_path / 'HR'
    hr_dir.mkdir()
    for i, (h, w) in enumerate(((50, 46), (41, 53))):
        cv2.imwrite(str(hr_dir / f'img{i}.png'), smooth_image(rng, h, w))
    torch.manual_seed(0)
    net = NODEVDSR(**{k: v for k, v in NET.items() if k != 'type'})
    assert not net.conv_last.weight.any()
    weights = tmp_path / 'net.pth'
    torch.save({'params': net.state_dict()}, weights)
    options = {'name': 'tiny_nodesr', 'model_type': 'NODESRModel', 'num_gpu': 0, 'network_g': NET,
               'ode': {'solver': 'rk4', 'num_steps': 2},
               'path': {'pretrain_network_g': str(weights), 'param_key_g': 'params', 'strict_load_g': True}}
    option_file = tmp_path / 'nodesr.yml'
    option_file.write_text(yaml.safe_dump(options, sort_keys=False))
    return option_file, hr_dir


def independent_bicubic_psnr(hr_dir: Path, scale: float) -> float:
    """Bicubic PSNR with BasicSR's own MATLAB imresize, not the package's batched one."""
    values = []
    for path in sorted(hr_dir.iterdir()):
        lr, reference = benchmark_pair(cv2.imread(str(path)), scale)
        up = imresize(lr.astype(np.float64) / 255, scale)[:reference.shape[0], :reference.shape[1]]
        up = np.round(np.clip(up, 0, 1) * 255).astype(np.uint8)
        values.append(calculate_psnr(up, reference, crop_border=math.ceil(scale), test_y_channel=True))
    return float(np.mean(values))


def test_zero_dynamics_equals_bicubic(script, setup, tmp_path):
    option_file, hr_dir = setup
    output, table = tmp_path / 'plot.png', tmp_path / 'sweep.csv'
    status = cli.main(['-opt', str(option_file), '--hr-dir', str(hr_dir), '--output', str(output),
                          '--scales', *map(str, SCALES), '--csv', str(table), '--device', 'cpu'])
    assert status == 0

    nodesr, _ = script.load_nodesr(option_file)
    results = script.sweep(nodesr, script.read_hr_images(hr_dir, SCALES), SCALES)
    assert [r.scale for r in results] == sorted(SCALES)
    for r in results:
        assert math.isfinite(r.psnr_model) and r.psnr_model == pytest.approx(r.psnr_bicubic, abs=1e-6)
        assert r.psnr_bicubic == pytest.approx(independent_bicubic_psnr(hr_dir, r.scale), abs=1e-3)

    data = output.read_bytes()
    assert len(data) > 1000 and data.startswith(b'\x89PNG\r\n\x1a\n')
    assert cv2.imread(str(output)) is not None

    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert [float(row['scale']) for row in rows] == [1.15, 2.5, 6.0]
    assert [row['seen'] for row in rows] == ['0', '1', '0']
    for row, r in zip(rows, results, strict=True):
        assert float(row['psnr_model']) == pytest.approx(r.psnr_model, abs=1e-5)
        assert float(row['psnr_bicubic']) == pytest.approx(r.psnr_bicubic, abs=1e-5)


def test_default_scales(script):
    scales = script.default_scales()
    seen = [s for s in scales if script.is_seen(s)]
    assert len(seen) == 30 and seen[0] == 1.1 and seen[-1] == 4.0
    assert [s for s in scales if not script.is_seen(s)][-5:] == [3.95, 4.5, 5.0, 6.0, 8.0]
    assert len(scales) == 30 + 29 + 4 and 1.15 in scales


def test_errors(script, setup, tmp_path, capsys):
    option_file, hr_dir = setup
    base = ['--hr-dir', str(hr_dir), '--output', str(tmp_path / 'x.png')]
    assert cli.main(['-opt', str(REPO_ROOT / 'options' / 'test_OISR_LF_x2.yml'), *base]) == 2
    assert 'error:' in (err := capsys.readouterr().err) and 'is not a NODE-SR option file' in err
    assert cli.main(['-opt', str(tmp_path / 'missing.yml'), *base]) == 2
    assert 'error: option file not found' in capsys.readouterr().err
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert cli.main(['-opt', str(option_file), '--hr-dir', str(empty), '--output', str(tmp_path / 'x.png')]) == 2
    assert 'holds no images' in capsys.readouterr().err
    nowhere = tmp_path / 'nowhere'
    assert cli.main(['-opt', str(option_file), '--hr-dir', str(nowhere), '--output', str(tmp_path / 'x.png')]) == 2
    assert capsys.readouterr().err == f'error: HR folder {nowhere} does not exist\n'
    assert not (tmp_path / 'x.png').exists()
