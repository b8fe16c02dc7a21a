"""BenchmarkHRDataset: the papers' evaluation protocol from HR folders alone, equal to the prepared-folder route."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, SHARED_DATA, needs_shared_data, run_entry_point, smooth_image

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from basicsr.utils.matlab_functions import imresize as basicsr_imresize

from benchmarks import bench_bicubic_benchmarks
from oisr_basicsr.data.benchmark_hr_dataset import BenchmarkHRDataset
from oisr_basicsr.data.preparation import make_benchmark_folders
from oisr_basicsr.data.resize import imresize_uint8
from oisr_basicsr.options import OptionError
from oisr_basicsr.startup import validate_options

BENCHMARKS = SHARED_DATA / 'benchmark'
# ../shared/data/README.md: published bicubic PSNR / SSIM on Set5.
SET5_BICUBIC = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


def needs(name: str) -> pytest.MarkDecorator:
    return needs_shared_data(f'benchmark/{name}/HR')


def dataset(folder, scale: int, **extra) -> BenchmarkHRDataset:
    return BenchmarkHRDataset({'name': 'bench', 'dataroot_gt': str(folder), 'scale': scale, 'phase': 'test',
                               'io_backend': {'type': 'disk'}, **extra})


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """CHW RGB float in [0, 1] -> HWC BGR uint8, exactly (the dataset's values are k / 255)."""
    return np.round(tensor.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)


def to_gray(tensor: torch.Tensor) -> np.ndarray:
    """1xHxW float in [0, 1] -> HxW uint8, exactly (the dataset's values are k / 255)."""
    return np.round(tensor[0].numpy() * 255).astype(np.uint8)


@pytest.fixture
def hr_folder(tmp_path):
    """A colour image and a grayscale one, neither side a multiple of 2, 3 or 4, plus files to skip."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'HR'
    folder.mkdir()
    cv2.imwrite(str(folder / 'color.png'), smooth_image(rng, 53, 67))
    cv2.imwrite(str(folder / 'gray.png'), smooth_image(rng, 49, 35)[..., 1])
    cv2.imwrite(str(folder / '.hidden.png'), smooth_image(rng, 16, 16))
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_items_are_modcropped_hr_and_its_matlab_bicubic_lr(hr_folder, scale):
    data = dataset(hr_folder, scale)
    assert len(data) == 2
    color = cv2.imread(str(hr_folder / 'color.png'))
    item = data[0]
    assert item['gt_path'] == item['lq_path'] == str(hr_folder / 'color.png')
    gt = color[:53 - 53 % scale, :67 - 67 % scale]
    np.testing.assert_array_equal(to_image(item['gt']), gt)
    np.testing.assert_array_equal(to_image(item['lq']), imresize_uint8(gt, 1 / scale))
    assert item['gt'].dtype == item['lq'].dtype == torch.float32
    assert item['lq'].shape == (3, 53 // scale, 67 // scale)
    gray = data[1]
    assert gray['gt'].shape == (3, 49 - 49 % scale, 35 - 35 % scale)
    assert torch.equal(gray['gt'][0], gray['gt'][1]) and torch.equal(gray['gt'][0], gray['gt'][2])


def test_modcrop_option_crops_to_a_multiple_of_the_scale(hr_folder):
    item = dataset(hr_folder, 2, modcrop=12)[0]
    assert item['gt'].shape == (3, 48, 60) and item['lq'].shape == (3, 24, 30)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_same_tensors_as_paired_dataset_on_prepared_folders(tmp_path, hr_folder, scale):
    make_benchmark_folders(hr_folder, tmp_path / 'prepared', scales=(scale, ), num_workers=1)
    paired = PairedImageDataset({'dataroot_gt': str(tmp_path / 'prepared' / 'GTmod12'), 'phase': 'test',
                                 'dataroot_lq': str(tmp_path / 'prepared' / f'LRbicx{scale}'), 'scale': scale,
                                 'io_backend': {'type': 'disk'}})
    ours = dataset(hr_folder, scale, modcrop=12)
    by_name = {item['gt_path'].rsplit('/', 1)[-1]: item for item in (paired[i] for i in range(len(paired)))}
    assert len(by_name) == len(ours) == 2
    for item in (ours[i] for i in range(len(ours))):
        other = by_name[item['gt_path'].rsplit('/', 1)[-1]]
        assert torch.equal(item['gt'], other['gt']) and torch.equal(item['lq'], other['lq'])


@needs('Set14')
def test_set14_both_routes_give_identical_tensors(tmp_path):
    # Set14 holds the grayscale bridge.png; both routes read it as three equal channels.
    make_benchmark_folders(BENCHMARKS / 'Set14' / 'HR', tmp_path, scales=(4, ), num_workers=1)
    paired = PairedImageDataset({'dataroot_gt': str(tmp_path / 'GTmod12'), 'dataroot_lq': str(tmp_path / 'LRbicx4'),
                                 'phase': 'test', 'scale': 4, 'io_backend': {'type': 'disk'}})
    ours = dataset(BENCHMARKS / 'Set14' / 'HR', 4, modcrop=12)
    by_name = {Path(item['gt_path']).name: item for item in (paired[i] for i in range(len(paired)))}
    assert len(by_name) == len(ours) == 14 and 'bridge.png' in by_name
    for item in (ours[i] for i in range(len(ours))):
        other = by_name[Path(item['gt_path']).name]
        assert torch.equal(item['gt'], other['gt']) and torch.equal(item['lq'], other['lq'])


def set5_direct(scale: int) -> tuple[float, float]:
    """Mean PSNR / SSIM of bicubic on Set5 with the protocol written out image by image."""
    psnrs, ssims = [], []
    for path in sorted((BENCHMARKS / 'Set5' / 'HR').iterdir()):
        hr = cv2.imread(str(path))
        hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        sr = imresize_uint8(imresize_uint8(hr, 1 / scale), scale)
        psnrs.append(calculate_psnr(sr, hr, scale, test_y_channel=True))
        ssims.append(calculate_ssim(sr, hr, scale, test_y_channel=True))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def matlab_script_psnr(hr_dir: Path, scale: int) -> float:
    """Mean bicubic PSNR as the SRCNN / VDSR MATLAB scripts compute it, written out with BasicSR's own resizer.

    Y is MATLAB's rounded 8-bit Y (a grayscale file is its own Y), it is resized alone, the LR stays in
    floating point and only the upscaled result is rounded.
    """
    psnrs = []
    for path in sorted(hr_dir.iterdir()):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        y = img if img.ndim == 2 else matlab_y(img)
        y = y[:y.shape[0] - y.shape[0] % scale, :y.shape[1] - y.shape[1] % scale] / 255.
        sr = np.clip(np.round(basicsr_imresize(basicsr_imresize(y, 1 / scale), scale) * 255.), 0, 255)
        psnrs.append(calculate_psnr(sr[..., None], y[..., None] * 255., crop_border=scale))
    return float(np.mean(psnrs))


def matlab_y(bgr: np.ndarray) -> np.ndarray:
    """MATLAB's rgb2ycbcr on uint8: Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)."""
    bgr = bgr.astype(np.float64)
    return np.round(16 + (65.481 * bgr[..., 2] + 128.553 * bgr[..., 1] + 24.966 * bgr[..., 0]) / 255)


def logged_metrics(log_dir: Path) -> dict[str, tuple[float, float]]:
    log = next(log_dir.glob('test_*.log')).read_text()
    return {name: (float(psnr), float(ssim)) for name, psnr, ssim in re.findall(
        r'Validation (\w+)\n\t # psnr: ([0-9.]+)[^\n]*\n\t # ssim: ([0-9.]+)', log)}


@pytest.mark.slow
@needs('Set5')
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_shipped_bicubic_options_reproduce_the_published_set5_row(tmp_path, scale):
    hr_dir = BENCHMARKS / 'Set5' / 'HR'
    opt = yaml.safe_load((REPO_ROOT / 'options' / f'test_Bicubic_x{scale}.yml').read_text())
    opt['datasets'] = {'test_1': {**opt['datasets']['test_1'], 'dataroot_gt': str(hr_dir)}}
    assert opt['datasets']['test_1']['protocol'] == 'matlab_y'
    result = run_entry_point('oisr_basicsr.test', opt, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    psnr, ssim = logged_metrics(tmp_path / 'results' / opt['name'])['Set5']
    # Equal at the published precision (two decimals of PSNR, four of SSIM), not merely within 0.01 dB.
    assert (round(psnr, 2), round(ssim, 4)) == SET5_BICUBIC[scale]
    assert psnr == pytest.approx(matlab_script_psnr(hr_dir, scale), abs=1e-4)


@pytest.mark.parametrize('scale', [2, 3])
def test_matlab_y_items_are_the_rounded_y_and_its_unrounded_lr(hr_folder, scale):
    data = dataset(hr_folder, scale, protocol='matlab_y')
    color, gray = data[0], data[1]
    y = matlab_y(cv2.imread(str(hr_folder / 'color.png'))[:53 - 53 % scale, :67 - 67 % scale]) / 255
    assert color['gt'].shape == (1, *y.shape) and color['lq'].shape == (1, 53 // scale, 67 // scale)
    np.testing.assert_allclose(color['gt'][0].numpy(), y, atol=1e-7)
    np.testing.assert_allclose(color['lq'][0].numpy(), basicsr_imresize(y, 1 / scale), atol=1e-6)
    lq_levels = color['lq'].numpy() * 255
    assert not np.allclose(lq_levels, np.round(lq_levels))
    gray_values = cv2.imread(str(hr_folder / 'gray.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(to_gray(gray['gt']), gray_values[:49 - 49 % scale, :35 - 35 % scale])


def test_matlab_y_reads_an_alpha_channel_as_rgb_and_refuses_16_bit_files(tmp_path):
    rng = np.random.default_rng(1)
    bgr = smooth_image(rng, 24, 20)
    cv2.imwrite(str(tmp_path / 'rgba.png'), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    item = dataset(tmp_path, 2, protocol='matlab_y')[0]
    np.testing.assert_allclose(item['gt'][0].numpy(), matlab_y(bgr) / 255, atol=1e-7)
    cv2.imwrite(str(tmp_path / 'sixteen.png'), bgr.astype(np.uint16) * 257)
    with pytest.raises(ValueError, match=r'sixteen\.png: protocol matlab_y reads 8-bit images, this one is uint16'):
        dataset(tmp_path, 2, protocol='matlab_y')[1]


@pytest.mark.slow
@needs('Set5')
def test_rgb_protocol_equals_the_prepared_folders_and_a_direct_computation(tmp_path):
    hr_dir = BENCHMARKS / 'Set5' / 'HR'
    make_benchmark_folders(hr_dir, tmp_path / 'prepared', scales=(2, ), num_workers=1)
    opt = yaml.safe_load((REPO_ROOT / 'options' / 'test_Bicubic_x2.yml').read_text())
    hr_route = {**opt['datasets']['test_1'], 'dataroot_gt': str(hr_dir), 'protocol': 'rgb'}
    opt['datasets'] = {
        'test_1': hr_route,
        'test_2': {**hr_route, 'name': 'hr_only_mod12', 'modcrop': 12},
        'test_3': {'name': 'prepared', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                   'dataroot_gt': str(tmp_path / 'prepared' / 'GTmod12'),
                   'dataroot_lq': str(tmp_path / 'prepared' / 'LRbicx2')},
    }
    result = run_entry_point('oisr_basicsr.test', opt, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = logged_metrics(tmp_path / 'results' / opt['name'])
    assert set(numbers) == {'Set5', 'hr_only_mod12', 'prepared'}
    # GTmod12 crops up to 11 more rows / columns than mod-2 (8 rows of baby.png and woman.png), hence '!='.
    assert numbers['prepared'] == numbers['hr_only_mod12'] != numbers['Set5']
    direct_psnr, direct_ssim = set5_direct(2)
    assert numbers['Set5'][0] == pytest.approx(direct_psnr, abs=1e-4)
    assert numbers['Set5'][1] == pytest.approx(direct_ssim, abs=1e-4)


@needs('Set5')
@pytest.mark.parametrize('scale', [3, 4])
def test_rgb_protocol_through_the_dataset_and_basicsr_metrics_equals_a_direct_computation(scale):
    data = build_dataset({'name': 'Set5', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(BENCHMARKS / 'Set5' / 'HR'),
                          'scale': scale, 'phase': 'test', 'io_backend': {'type': 'disk'}})
    network = build_network({'type': 'Bicubic', 'upscale': scale})
    psnrs, ssims = [], []
    for item in (data[i] for i in range(len(data))):
        with torch.no_grad():
            sr, gt = tensor2img([network(item['lq'][None])]), tensor2img([item['gt'][None]])
        psnrs.append(calculate_psnr(sr, gt, scale, test_y_channel=True))
        ssims.append(calculate_ssim(sr, gt, scale, test_y_channel=True))
    direct_psnr, direct_ssim = set5_direct(scale)
    assert np.mean(psnrs) == pytest.approx(direct_psnr, abs=1e-4)
    assert np.mean(ssims) == pytest.approx(direct_ssim, abs=1e-4)


def test_matlab_y_protocol_is_refused_for_an_rgb_network(hr_folder):
    opt = {'name': 'y_with_rgb_net', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'path': {},
           'network_g': {'type': 'OISR', 'upscale': 2, 'num_feat': 8, 'num_block': 1},
           'datasets': {'test_1': {'name': 'Set5', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(hr_folder),
                                   'protocol': 'matlab_y', 'io_backend': {'type': 'disk'}}}}
    with pytest.raises(OptionError, match=r'datasets\.test_1\.protocol: matlab_y gives single-channel Y images, '
                                          r'but network_g \(OISR\) reads 3 channels; use protocol: rgb'):
        validate_options(opt)
    opt['network_g'] = {'type': 'Bicubic', 'upscale': 2}
    validate_options(opt)


@pytest.mark.parametrize('change,message', [
    ({'dataroot_gt': None}, r"dataset 'bench' \(BenchmarkHRDataset\): dataroot_gt is missing"),
    ({'dataroot_gt': 'nowhere'}, r'dataroot_gt: folder nowhere does not exist'),
    ({'scale': 1}, r'scale: 1 is not supported; the benchmark protocol needs an integer scale >= 2'),
    ({'scale': 2.5}, r'scale: 2\.5 is not supported'),
    ({'scale': None}, r'scale: None is not supported.*set the top-level scale key'),
    ({'modcrop': 10, 'scale': 4}, r'modcrop: 10 must be a positive multiple of the scale 4'),
    ({'io_backend': {'type': 'lmdb'}}, r"io_backend\.type: 'lmdb' is not supported"),
    ({'dataroot_lq': 'LR'}, r'dataroot_lq: this dataset makes the LR images from dataroot_gt itself'),
    ({'phase': 'train'}, r"it is for validation and testing; it cannot be a 'train' dataset"),
    ({'protocol': 'y'}, r"protocol: 'y' is not one of rgb, matlab_y"),
])
def test_bad_options_name_the_key(hr_folder, change, message):
    opt = {'name': 'bench', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(hr_folder), 'scale': 2,
           'phase': 'test', 'io_backend': {'type': 'disk'}}
    opt.update(change)
    opt = {key: value for key, value in opt.items() if value is not None or key == 'scale'}
    with pytest.raises(OptionError, match=message):
        build_dataset(opt)


def test_empty_folder_and_too_small_image_are_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images')
    with pytest.raises(OptionError, match=r'dataroot_gt: folder .*empty holds no images \(\.png'):
        dataset(tmp_path / 'empty', 2)
    (tmp_path / 'small').mkdir()
    cv2.imwrite(str(tmp_path / 'small' / 'tiny.png'), np.zeros((3, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r'tiny\.png: image of size 3x8 is smaller than the crop multiple 4'):
        dataset(tmp_path / 'small', 4)[0]


def test_shipped_test_options_read_hr_folders():
    paths = [*REPO_ROOT.glob('options/test_OISR_*.yml'), *REPO_ROOT.glob('options/test_Bicubic_x*.yml')]
    assert len(paths) == 18
    for path in paths:
        entries = list(yaml.safe_load(path.read_text())['datasets'].values())
        assert [entry['name'] for entry in entries] == ['Set5', 'Set14', 'B100', 'Urban100']
        for entry in entries:
            assert entry['type'] == 'BenchmarkHRDataset', path.name
            assert entry['dataroot_gt'] == f'datasets/{entry["name"]}/HR'


@pytest.mark.slow
@needs('Set5')
def test_benchmark_script_prints_both_protocols_next_to_the_published_row(capsys, tmp_path):
    assert bench_bicubic_benchmarks.main(['--data-root', str(BENCHMARKS), '--datasets', 'Set5', '--scales', '2']) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.split(' | ')[2:] == ['Published', 'rgb PSNR / SSIM', 'diff', 'matlab_y PSNR / SSIM', 'diff |']
    cells = row.strip('| ').split(' | ')
    assert cells[:3] == ['Set5', 'x2', '33.66 / 0.9299']
    rgb_psnr, matlab_y_psnr = float(cells[3].split(' / ')[0]), float(cells[5].split(' / ')[0])
    assert rgb_psnr == pytest.approx(set5_direct(2)[0], abs=1e-4)
    assert matlab_y_psnr == pytest.approx(matlab_script_psnr(BENCHMARKS / 'Set5' / 'HR', 2), abs=1e-4)
    assert float(cells[6]) == pytest.approx(matlab_y_psnr - 33.66, abs=1e-4)
    assert bench_bicubic_benchmarks.main(['--data-root', str(tmp_path), '--datasets', 'Set5']) == 2
    assert f'error: no HR folder under {tmp_path} for Set5' in capsys.readouterr().err
