"""oisr_basicsr/tools/compare.py: tables, CSV and plot for OISR, BasicSR and parameter-free models; PSNR checked
against an independent implementation of the paper protocol."""

import csv
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_DATA, run_entry_point, smooth_image

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.utils.matlab_functions import imresize

from oisr_basicsr.archs.bicubic_arch import Bicubic
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.tools import compare

OISR_NET = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}
EDSR_NET = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}


@pytest.fixture(scope='module')
def compare_models():
    return compare



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
    pytest.importorskip('matplotlib')
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
                             'TinyA_psnr', 'TinyA_ssim', 'TinyA_protocol', 'TinyB_psnr', 'TinyB_ssim', 'TinyB_protocol']
    assert {row[f'{name}_protocol'] for row in rows for name in ('TinyA', 'TinyB')} == {'rgb'}
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


def test_without_matplotlib_the_table_is_printed_and_the_plot_skipped(tmp_path, setup, compare_models, capsys,
                                                                        monkeypatch, one_thread):
    root, option_files, _ = setup
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # what `import matplotlib` sees when it is not installed
    output_dir = tmp_path / 'comparison'
    status = compare_models.main(['-opt', str(option_files[2]), '--datasets', 'TinyA', '--data-root', str(root),
                                  '--output-dir', str(output_dir), '--latency-devices', '--no-progress'])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err.splitlines()[0].startswith('note: the PSNR-vs-MACs plot will be skipped: matplotlib cannot '
                                                   'be imported')
    assert '| bicubic | x2 | 0.00M | 0.0G |' in captured.out
    assert 'plot skipped: matplotlib cannot be imported' in captured.out and 'pip install -e ".[plot]"' in captured.out
    assert sorted(p.name for p in output_dir.iterdir()) == ['comparison.csv', 'comparison.md']  # no temporary files


def test_interrupted_write_keeps_the_previous_results(tmp_path, setup, compare_models, monkeypatch):
    results = [compare_models.ModelResult('a', 'OISR', 2, 'none', 1, 2, {}, {'Set5': (30.0, 0.9)})]
    output_dir = tmp_path / 'out'
    compare_models.write_outputs(results, output_dir, plot=False)
    before = (output_dir / 'comparison.md').read_text()

    def crash(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', crash)
    results[0].metrics['Set5'] = (31.0, 0.95)
    with pytest.raises(KeyboardInterrupt):
        compare_models.write_outputs(results, output_dir, plot=False)
    assert (output_dir / 'comparison.md').read_text() == before
    assert sorted(p.name for p in output_dir.iterdir()) == ['comparison.csv', 'comparison.md']


SET5 = SHARED_DATA / 'benchmark' / 'Set5' / 'HR'


@pytest.mark.skipif(not SET5.is_dir(), reason='needs the shared Set5 benchmark images')
@pytest.mark.slow
def test_matlab_y_protocol_equals_the_test_entry_point_on_set5(tmp_path, compare_models, capsys, one_thread):
    # Bicubic and a one-channel OISR (Y in, Y out), both measured with protocol: matlab_y.
    torch.manual_seed(0)
    oisr = OISR(num_in_ch=1, num_out_ch=1, num_feat=4, num_block=1, upscale=2, scheme='rk2', g_variant='v3',
                rgb_mean=(0.44, ))
    weights = tmp_path / 'oisr_y.pth'
    torch.save({'params': oisr.state_dict()}, weights)
    networks = {'bicubic_y': ({'type': 'Bicubic', 'upscale': 2}, None),
                'oisr_y': ({'type': 'OISR', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 4, 'num_block': 1,
                            'upscale': 2, 'scheme': 'rk2', 'g_variant': 'v3', 'rgb_mean': [0.44]}, str(weights))}
    option_files, expected = [], {}
    for name, (network, pretrained) in networks.items():
        options = {'name': name, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
                   'datasets': {'test_1': {'name': 'Set5', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(SET5),
                                           'protocol': 'matlab_y', 'io_backend': {'type': 'disk'}}},
                   'network_g': network, 'path': {'pretrain_network_g': pretrained, 'strict_load_g': True},
                   'val': {'save_img': False, 'metrics': {
                       'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}}}
        tested = run_entry_point('oisr_basicsr.test', options, tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        log = next((tmp_path / 'results' / name).glob('test_*.log')).read_text()
        expected[name] = float(re.search(r'# psnr: ([0-9.]+)', log).group(1))
        option_files.append(str(tmp_path / f'{name}_test.yml'))

    output_dir = tmp_path / 'comparison'
    assert compare_models.main(['-opt', *option_files, '--datasets', 'Set5', '--data-root', str(SET5.parent.parent),
                                '--output-dir', str(output_dir), '--latency-devices', '--no-progress']) == 0, \
        capsys.readouterr().err
    with (output_dir / 'comparison.csv').open() as file:
        rows = {row['model']: row for row in csv.DictReader(file)}
    for name, psnr in expected.items():
        assert rows[name]['Set5_protocol'] == 'matlab_y'
        assert float(rows[name]['Set5_psnr']) == pytest.approx(psnr, abs=1e-4)
    # The published Set5 x2 bicubic row (33.66 dB) is what matlab_y reproduces; rgb would read higher.
    assert round(expected['bicubic_y'], 2) == 33.66
