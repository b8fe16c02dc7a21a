"""oisr_basicsr/tools/compare.py: tables, CSV and plot for OISR, BasicSR and parameter-free models; PSNR checked
against an independent implementation of the paper protocol."""

import csv
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_DATA, needs_shared_data, run_entry_point, smooth_image

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.utils import bgr2ycbcr
from basicsr.utils.matlab_functions import imresize

from oisr_basicsr.archs.bicubic_arch import Bicubic
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.tools import compare
from oisr_basicsr.tools.comparison_figure import draw_figure, figure_panels, resolve_figure_requests, zoom_factor
from oisr_cli.commands import compare as compare_command

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


def _independent_sr(net: torch.nn.Module, path: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The HR image cropped to a multiple of ``scale`` and the network's 8-bit result (both BGR), written out with
    numpy and BasicSR's MATLAB imresize only."""
    hr = cv2.imread(str(path))
    hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
    lr = np.clip(np.round(imresize(hr / 255., 1 / scale) * 255), 0, 255).astype(np.uint8)
    lq = torch.from_numpy(lr[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        sr_rgb = net(lq)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return hr, np.round(sr_rgb[..., ::-1] * 255)


def _independent_image_psnr(net: torch.nn.Module, path: Path, scale: int) -> float:
    """The paper protocol written out with numpy and BasicSR's MATLAB imresize only."""
    hr, sr = _independent_sr(net, path, scale)
    # BT.601 luma of 8-bit BGR, in [16, 235].
    luma = [img.astype(np.float64) @ np.array([24.966, 128.553, 65.481]) / 255 + 16 for img in (sr, hr)]
    diff = (luma[0] - luma[1])[scale:-scale, scale:-scale]
    return 10 * np.log10(255**2 / np.mean(diff**2))


def _independent_psnr(net: OISR, hr_dir: Path, scale: int) -> float:
    """The mean of :func:`_independent_image_psnr` over the folder."""
    return float(np.mean([_independent_image_psnr(net, path, scale) for path in sorted(hr_dir.iterdir())]))


def test_outputs_columns_and_psnr(tmp_path, setup, compare_models, capsys, one_thread):
    pytest.importorskip('matplotlib')
    root, option_files, oisr = setup
    output_dir = tmp_path / 'comparison'
    status = compare_command.main(['-opt', *map(str, option_files), '--datasets', 'TinyA', 'TinyB', '--data-root',
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


def test_nodesr_is_measured_at_the_scale_asked_for(tmp_path, setup, compare_models, capsys, one_thread):
    root, option_files, _ = setup
    dynamics = NODEVDSR(num_feat=4, num_layer=2)  # its last layer starts at zero: f = 0, the solution is bicubic
    weights = tmp_path / 'node.pth'
    torch.save({'params': dynamics.state_dict()}, weights)
    node_options = {'name': 'tiny_NODE', 'model_type': 'NODESRModel', 'ode': {'solver': 'rk4', 'num_steps': 1},
                    'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
                    'path': {'pretrain_network_g': str(weights)}}
    node_file = tmp_path / 'node.yml'
    node_file.write_text(yaml.safe_dump(node_options))
    output_dir = tmp_path / 'comparison'
    args = ['--datasets', 'TinyA', 'TinyB', '--data-root', str(root), '--output-dir', str(output_dir), '--device',
            'cpu', '--latency-devices', 'cpu', '--latency-size', '16', '16', '--latency-runs', '1', '--warmup', '0',
            '--no-progress']
    assert compare_command.main(['-opt', str(node_file), str(option_files[2]), '--scale', '2', *args]) == 0, \
        capsys.readouterr().err
    with (output_dir / 'comparison.csv').open() as file:
        node_row, bicubic_row = csv.DictReader(file)
    assert (node_row['model'], node_row['arch'], node_row['scale']) == ('tiny_NODE', 'NODEVDSR', '2')
    for name in ('TinyA', 'TinyB'):
        assert node_row[f'{name}_psnr'] == bicubic_row[f'{name}_psnr']
    # One RK4 step: four evaluations of f, each its conv weights times the 1280x720 output positions.
    conv_weights = sum(m.weight.numel() for m in dynamics.modules() if isinstance(m, torch.nn.Conv2d))
    assert int(node_row['macs_720p']) == 4 * conv_weights * 720 * 1280
    assert int(node_row['params']) == sum(p.numel() for p in dynamics.parameters())
    assert float(node_row['latency_cpu_ms']) > 0

    capsys.readouterr()
    refused = tmp_path / 'refused'
    args[args.index(str(output_dir))] = str(refused)
    assert compare_command.main(['-opt', str(node_file), *args]) == 2
    assert capsys.readouterr().err == (f'error: {node_file}: NODE-SR serves any scale; give the one to compare at '
                                       'with --scale (an integer >= 2, as the benchmark protocol needs)\n')
    assert compare_command.main(['-opt', str(node_file), str(option_files[2]), '--scale', '3', *args]) == 2
    assert capsys.readouterr().err == (f'error: {option_files[2]}: --scale 3: network_g (Bicubic) upscales by 2 '
                                       'only\n')
    node_file.write_text(yaml.safe_dump({**node_options, 'ode': {'solver': 'dopri5'}}))
    assert compare_command.main(['-opt', str(node_file), '--scale', '2', *args]) == 2
    assert 'ode.solver dopri5 chooses its steps from the image' in capsys.readouterr().err
    assert not refused.exists()


def test_bad_inputs_fail_fast(tmp_path, setup, compare_models, capsys):
    root, option_files, _ = setup
    args = ['--data-root', str(root), '--output-dir', str(tmp_path / 'out'), '--latency-devices']
    assert compare_command.main(['-opt', str(option_files[0]), '--datasets', 'Missing', *args]) == 2
    assert 'dataset Missing: none of' in capsys.readouterr().err
    # An untrained network is an error unless asked for, and it is found before any dataset is evaluated.
    assert compare_command.main(['-opt', *map(str, option_files), '--datasets', 'TinyA', *args]) == 2
    assert 'no weights' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_without_matplotlib_the_table_is_printed_and_the_plot_skipped(tmp_path, setup, compare_models, capsys,
                                                                        monkeypatch, one_thread):
    root, option_files, _ = setup
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # what `import matplotlib` sees when it is not installed
    output_dir = tmp_path / 'comparison'
    status = compare_command.main(['-opt', str(option_files[2]), '--datasets', 'TinyA', '--data-root', str(root),
                                  '--output-dir', str(output_dir), '--latency-devices', '--no-progress'])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err.splitlines()[0].startswith('note: the PSNR-vs-MACs plot will be skipped: matplotlib cannot '
                                                   'be imported')
    assert '| bicubic | x2 | 0.00M | 0.0G |' in captured.out
    assert 'plot skipped: matplotlib cannot be imported' in captured.out and 'pip install -e ".[plot]"' in captured.out
    # No temporary files; the HTML report says why it has no plot.
    assert sorted(p.name for p in output_dir.iterdir()) == ['comparison.csv', 'comparison.html', 'comparison.md']
    assert '<p>plot skipped: matplotlib cannot be imported' in (output_dir / 'comparison.html').read_text()


def test_interrupted_write_keeps_the_previous_results(tmp_path, setup, compare_models, monkeypatch):
    results = [compare_models.ModelResult('a', 'OISR', 2, 'none', 1, 2, {}, {'Set5': (30.0, 0.9)})]
    output_dir = tmp_path / 'out'
    compare_models.write_outputs(results, output_dir, plot=False)
    before = {name: (output_dir / name).read_text() for name in ('comparison.md', 'comparison.html')}

    def crash(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', crash)
    results[0].metrics['Set5'] = (31.0, 0.95)
    with pytest.raises(KeyboardInterrupt):
        compare_models.write_outputs(results, output_dir, plot=False)
    assert {name: (output_dir / name).read_text() for name in before} == before
    assert sorted(p.name for p in output_dir.iterdir()) == ['comparison.csv', 'comparison.html', 'comparison.md']


SET5 = SHARED_DATA / 'benchmark' / 'Set5' / 'HR'


@needs_shared_data('benchmark/Set5/HR')
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
    assert compare_command.main(['-opt', *option_files, '--datasets', 'Set5', '--data-root', str(SET5.parent.parent),
                                '--output-dir', str(output_dir), '--latency-devices', '--no-progress']) == 0, \
        capsys.readouterr().err
    with (output_dir / 'comparison.csv').open() as file:
        rows = {row['model']: row for row in csv.DictReader(file)}
    for name, psnr in expected.items():
        assert rows[name]['Set5_protocol'] == 'matlab_y'
        assert float(rows[name]['Set5_psnr']) == pytest.approx(psnr, abs=1e-4)
    # The published Set5 x2 bicubic row (33.66 dB) is what matlab_y reproduces; rgb would read higher.
    assert round(expected['bicubic_y'], 2) == 33.66


def _zoomed(image: np.ndarray, zoom: int) -> np.ndarray:
    return np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)


def test_figure_crops_are_the_results_pixels(tmp_path, setup, compare_models, one_thread):
    pytest.importorskip('matplotlib')
    root, option_files, oisr = setup
    datasets = compare_models.resolve_datasets(['TinyA', 'TinyB'], root)
    boxes = resolve_figure_requests(['a:4,6,10', 'TinyB/gray:2,2,12'], datasets)
    results = compare_models.compare([option_files[0]], datasets, latency_devices=(), progress=False, figures=boxes)
    references = compare_models.bicubic_references(results, datasets, boxes, progress=False)
    assert [(r.label, r.arch, r.scale) for r in references] == [('Bicubic', 'Bicubic', 2)]
    # The table's means and the figures' values come from one list of per-image values.
    for name, per_image in results[0].per_image.items():
        assert results[0].metrics[name] == (np.mean([v[0] for v in per_image.values()]),
                                            np.mean([v[1] for v in per_image.values()]))
    assert list(results[0].per_image['TinyB']) == ['c.png', 'gray.png']

    for box in boxes:
        hr = cv2.imread(str(box.path))
        fig = draw_figure(box, hr, figure_panels(box, hr, [*references, *results]))
        captions = [ax.get_xlabel().split('\n') for ax in fig.axes]
        drawn = [np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes]
        assert captions[0] == [f'{box.dataset}/{box.image}', f'({box.x}, {box.y}), {box.size}x{box.size}']
        assert [caption[0] for caption in captions[1:]] == ['HR', 'Bicubic', 'tiny_OISR']
        zoom = zoom_factor(box.size)
        assert zoom * box.size >= 192 and drawn[1].shape[:2] == (zoom * box.size, ) * 2
        # Pixel for pixel: the HR box, then each network's 8-bit result in the box, in RGB, zoomed by repetition.
        assert np.array_equal(drawn[0], hr[..., ::-1])
        assert np.array_equal(drawn[1], _zoomed(box.cut(hr)[..., ::-1], zoom))
        for panel, net, caption, result in zip(drawn[2:], (Bicubic(upscale=2), oisr), captions[2:],
                                               [*references, *results], strict=True):
            _, sr = _independent_sr(net, box.path, 2)
            assert np.array_equal(panel, _zoomed(box.cut(sr)[..., ::-1].astype(np.uint8), zoom))
            psnr, ssim = result.per_image[box.dataset][box.image]
            assert caption[1] == f'{psnr:.2f} / {ssim:.4f}'
            assert psnr == pytest.approx(_independent_image_psnr(net, box.path, 2), abs=1e-3)
        # The bicubic reference is measured on the figures' images alone.
        assert list(references[0].per_image[box.dataset]) == [box.image]


def test_figure_of_a_y_channel_model_is_gray(tmp_path, setup, compare_models, one_thread):
    pytest.importorskip('matplotlib')
    root, _, _ = setup
    option_file = tmp_path / 'bicubic_y.yml'
    option_file.write_text(yaml.safe_dump({
        'name': 'bicubic_y', 'model_type': 'SRModel', 'scale': 2, 'network_g': {'type': 'Bicubic', 'upscale': 2},
        'datasets': {'test_1': {'name': 'TinyA', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(root / 'TinyA'),
                                'protocol': 'matlab_y'}}}))
    datasets = compare_models.resolve_datasets(['TinyA'], root)
    boxes = resolve_figure_requests(['a:4,6,10'], datasets)
    results = compare_models.compare([option_file], datasets, latency_devices=(), progress=False, figures=boxes)
    assert compare_models.bicubic_references(results, datasets, boxes) == []  # the model is bicubic already
    hr = cv2.imread(str(boxes[0].path))
    fig = draw_figure(boxes[0], hr, figure_panels(boxes[0], hr, results))
    drawn = np.asarray(fig.axes[2].get_images()[0].get_array())
    # The Y result, drawn in gray: MATLAB's 8-bit Y of the HR image (its 31 rows cropped to 30), its unrounded
    # bicubic LR and back up.
    y = bgr2ycbcr(hr[:30], y_only=True).astype(np.float64) / 255
    expected = np.clip(np.round(imresize(imresize(y, 0.5), 2) * 255), 0, 255)
    assert drawn.shape == (200, 200) and drawn.dtype == np.uint8
    assert np.array_equal(drawn, _zoomed(boxes[0].cut(expected), 20))


@pytest.mark.parametrize('request_text, message', [
    ('nothing:1,1,4', '--figure nothing:1,1,4: no image named nothing in TinyA, TinyB'),
    ('Nope/a:1,1,4', '--figure Nope/a:1,1,4: Nope is not one of the compared datasets (TinyA, TinyB)'),
    ('a:30,0,8', '--figure a:30,0,8: the 8x8 box at x=30, y=0 reaches x=38, y=8, outside a.png (36x31 pixels)'),
    # Inside the file, but its last row is cut off by the crop to a multiple of the scale, as the models see it.
    ('a:0,23,8', '--figure a:0,23,8: the 8x8 box at x=0, y=23 reaches x=8, y=31, outside a.png cropped to a '
                 'multiple of 2, as {option_file} measures it (36x30 pixels)'),
    ('a:1,1,0', "--figure a:1,1,0: SIZE is 0; the box's side must be at least 1 pixel"),
    ('a:1,1,-4', "--figure a:1,1,-4: SIZE is -4; the box's side must be at least 1 pixel"),
    ('a:-1,1,4', "--figure a:-1,1,4: X and Y are the box's top-left corner in the image and cannot be negative"),
    ('a:1,1', "--figure 'a:1,1': expected IMAGE:X,Y,SIZE"),
    ('a', "--figure 'a': expected IMAGE:X,Y,SIZE"),
    (':1,1,4', "--figure ':1,1,4': expected IMAGE:X,Y,SIZE"),
    ('a:1,x,4', "--figure 'a:1,x,4': expected IMAGE:X,Y,SIZE"),
], ids=['unknown-image', 'unknown-dataset', 'outside', 'outside-modcrop', 'size-0', 'size-negative', 'negative-x',
        'two-numbers', 'no-numbers', 'no-image', 'not-a-number'])
def test_bad_figure_requests_fail_before_any_model_runs(tmp_path, setup, compare_models, capsys, monkeypatch,
                                                        request_text, message):
    pytest.importorskip('matplotlib')
    root, option_files, _ = setup

    def no_model_runs(*_args, **_kwargs):
        raise AssertionError('a model ran')

    monkeypatch.setattr(compare_models, 'score_folder', no_model_runs)
    output_dir = tmp_path / 'out'
    status = compare_command.main(['-opt', str(option_files[0]), '--datasets', 'TinyA', 'TinyB', '--data-root',
                                  str(root), '--output-dir', str(output_dir), '--latency-devices', '--no-progress',
                                  '--figure', 'b:0,0,4', '--figure', request_text])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith('error: ' + message.format(option_file=option_files[0])), lines
    assert not output_dir.exists()


def test_figure_names_one_image(tmp_path, setup, compare_models, capsys):
    root, option_files, _ = setup
    cv2.imwrite(str(root / 'TinyB' / 'a.bmp'), smooth_image(np.random.default_rng(1), 16, 16))
    datasets = compare_models.resolve_datasets(['TinyA', 'TinyB'], root)
    with pytest.raises(compare_models.UserError, match=r'--figure a:1,1,4: a names 2 images \(TinyA/a.png, '
                       r'TinyB/a.bmp\); give one of them as DATASET/NAME'):
        resolve_figure_requests(['a:1,1,4'], datasets)
    # A dataset or the whole file name makes it one; a request repeated is drawn once.
    boxes = resolve_figure_requests(['TinyB/a:1,1,4', 'a.png:1,1,4', 'TinyA/a.png:1,1,4'], datasets)
    assert [(box.dataset, box.image, box.height, box.width) for box in boxes] == [('TinyB', 'a.bmp', 16, 16),
                                                                               ('TinyA', 'a.png', 31, 36)]


def test_figure_without_matplotlib_is_refused(tmp_path, setup, compare_models, capsys, monkeypatch):
    root, option_files, _ = setup
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    status = compare_command.main(['-opt', str(option_files[2]), '--datasets', 'TinyA', '--data-root', str(root),
                                  '--output-dir', str(tmp_path / 'out'), '--latency-devices', '--figure', 'a:1,1,4'])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith('error: --figure needs matplotlib: matplotlib cannot be imported')
    assert lines[0].endswith('pip install -e ".[plot]" (or pip install matplotlib)')
    assert not (tmp_path / 'out').exists()


CHROMIUM = next((path for name in ('chromium', 'chromium-browser', 'google-chrome') if (path := shutil.which(name))),
                None)


class _PageReader(HTMLParser):
    """The tables (by id: rows of cell texts), the images' sources and the body's attributes of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.image_sources, self.body = {}, [], {}
        self._table = self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'table':
            self._table = self.tables.setdefault(attrs.get('id'), [])
        elif tag == 'tr':
            self._row = []
            self._table.append(self._row)
        elif tag in ('td', 'th'):
            self._row.append('')
        elif tag == 'img':
            self.image_sources.append(attrs['src'])
        elif tag == 'body':
            self.body = attrs

    def handle_data(self, data):
        if self._row is not None and self._row:
            self._row[-1] += data.strip()

    def handle_endtag(self, tag):
        if tag == 'tr':
            self._row = None
        elif tag == 'table':
            self._table = None


def _pdf_objects(pdf: bytes) -> list[bytes]:
    """The objects of a PDF, found through its cross-reference table (so a broken offset fails)."""
    assert pdf.startswith(b'%PDF-1.') and pdf.rstrip().endswith(b'%%EOF')
    xref = int(re.search(rb'startxref\s+(\d+)\s+%%EOF\s*$', pdf).group(1))
    assert pdf[xref:xref + 4] == b'xref'
    first, count = map(int, pdf[xref + 4:].split(maxsplit=2)[:2])
    entries = pdf[xref:].split(b'\n', 2)[2].split(b'\n')[:count]
    objects = []
    for number, entry in enumerate(entries, start=first):
        offset, _, kind = entry.split()[:3]
        if kind == b'n':
            assert pdf[int(offset):].startswith(f'{number} 0 obj'.encode())
            objects.append(pdf[int(offset):pdf.index(b'endobj', int(offset))])
    return objects


def test_figure_files_and_html_report_in_a_browser(tmp_path, setup, compare_models, capsys, one_thread):
    pytest.importorskip('matplotlib')
    if CHROMIUM is None:
        assert not os.environ.get('OISR_REQUIRE_CHROMIUM'), 'OISR_REQUIRE_CHROMIUM is set but Chromium is missing'
        pytest.skip('needs Chromium to open the HTML report (Debian: apt-get install chromium; .ci/run installs it)')
    root, option_files, oisr = setup
    output_dir = tmp_path / 'comparison'
    status = compare_command.main(['-opt', *map(str, option_files), '--datasets', 'TinyA', 'TinyB', '--data-root',
                                  str(root), '--output-dir', str(output_dir), '--latency-devices', '--allow-random',
                                  '--no-progress', '--figure', 'a:4,6,10', '--figure', 'TinyB/c:0,0,24'])
    assert status == 0, capsys.readouterr().err
    figures = ['figure_TinyA_a_4_6_10', 'figure_TinyB_c_0_0_24']
    assert sorted(p.name for p in output_dir.iterdir()) == sorted(
        ['comparison.csv', 'comparison.html', 'comparison.md', 'psnr_vs_macs.png',
         *(f'{name}.{suffix}' for name in figures for suffix in ('pdf', 'png'))])
    png_sizes = []
    for name in ['psnr_vs_macs', *figures]:
        png = (output_dir / f'{name}.png').read_bytes()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert png.startswith(b'\x89PNG\r\n\x1a\n') and image is not None and image.std() > 0
        png_sizes.append(f'{image.shape[1]}x{image.shape[0]}')
    for name in figures:
        objects = _pdf_objects((output_dir / f'{name}.pdf').read_bytes())
        # One page; the HR image and the four crops (HR, the three models: a Bicubic model needs no reference).
        assert sum(b'/Type /Page\n' in obj or b'/Type /Page ' in obj for obj in objects) == 1
        assert sum(b'/Subtype /Image' in obj for obj in objects) == 5

    # Opened from another folder, the page can show only what it holds itself.
    page = tmp_path / 'elsewhere' / 'comparison.html'
    page.parent.mkdir()
    marker = ("<script>window.addEventListener('load', () => { document.body.dataset.images = "
              "[...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(' '); });</script>")
    page.write_text((output_dir / 'comparison.html').read_text().replace('</body>', marker + '</body>'))
    # --no-sandbox: Chromium's sandbox refuses to start as root, which CI containers often are.
    shown = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
                            f'--user-data-dir={tmp_path / "profile"}', '--virtual-time-budget=10000', '--dump-dom',
                            page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = _PageReader()
    dom.feed(shown.stdout)

    assert dom.body.get('data-images') == ' '.join(png_sizes)  # every image decoded, at its file's size
    assert all(src.startswith('data:image/png;base64,') for src in dom.image_sources)
    markdown = (output_dir / 'comparison.md').read_text().splitlines()
    assert dom.tables['comparison'] == [[cell.strip() for cell in line.strip('|').split('|')]
                                        for line in markdown[:5] if not line.startswith('|---')]
    with (output_dir / 'comparison.csv').open() as file:
        means = {row['model']: row for row in csv.DictReader(file)}
    for name, images in (('TinyA', ['a.png', 'b.png']), ('TinyB', ['c.png', 'gray.png'])):
        table = dom.tables[f'per-image-{name}']
        assert table[0] == ['Image', 'tiny_OISR', 'tiny_EDSR', 'bicubic']
        assert [row[0] for row in table[1:]] == images
        hr_dir = root / name / 'HR' if name == 'TinyA' else root / name
        for row, image in zip(table[1:], images, strict=True):
            assert float(row[1]) == pytest.approx(_independent_image_psnr(oisr, hr_dir / image, 2), abs=0.006)
            assert float(row[3]) == pytest.approx(_independent_image_psnr(Bicubic(upscale=2), hr_dir / image, 2),
                                                  abs=0.006)
        for column, model in enumerate(table[0][1:], start=1):
            mean = np.mean([float(row[column]) for row in table[1:]])
            assert mean == pytest.approx(float(means[model][f'{name}_psnr']), abs=0.006)
