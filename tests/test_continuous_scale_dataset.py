"""ContinuousScalePairedDataset: NODE-SR training pairs at drawn scales and Meta-SR / LIIF benchmark pairs."""

import math
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from basicsr.utils.registry import DATASET_REGISTRY
from conftest import SHARED_DATA, needs_shared_data, smooth_image
from torch.utils.data import DataLoader

from oisr_basicsr.data.continuous_scale_dataset import DEFAULT_SCALES, ContinuousScalePairedDataset, benchmark_pair
from oisr_basicsr.data.preparation import make_lmdb
from oisr_basicsr.data.resize import progressive_input, upscale_lr

B100_HR = SHARED_DATA / 'benchmark' / 'B100' / 'HR'
# Plain bicubic on B100 with the Meta-SR protocol, recomputed in spec/PROTOCOL.md.
B100_BICUBIC = {1.5: 32.18, 2.5: 28.16, 3.5: 26.48}
SIZES = [(60, 70), (64, 64), (75, 61)]


@pytest.fixture
def hr_folder(tmp_path):
    """Three colour HR images of different sizes and one grayscale one."""
    folder = tmp_path / 'HR'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index, (h, w) in enumerate(SIZES):
        cv2.imwrite(str(folder / f'img{index}.png'), smooth_image(rng, h, w))
    cv2.imwrite(str(folder / 'gray.png'), smooth_image(rng, 66, 58)[..., 0])
    return folder


def train_opt(root, **extra) -> dict:
    return {'phase': 'train', 'dataroot_gt': str(root), 'io_backend': {'type': 'disk'}, 'gt_size': 37, **extra}


def test_oisr_import_registers_the_dataset():
    assert DATASET_REGISTRY.get('ContinuousScalePairedDataset') is ContinuousScalePairedDataset


def test_training_item_is_a_patch_and_its_progressive_input(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, use_hflip=False, use_rot=False))
    assert len(dataset) == 4
    random.seed(0)
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {'gt', 'lq', 'scale', 'gt_path', 'lq_path'}
        assert item['gt'].shape == item['lq'].shape == (3, 37, 37)
        assert item['gt'].dtype == item['lq'].dtype == item['scale'].dtype == torch.float32
        assert item['scale'].shape == () and round(float(item['scale']), 1) in DEFAULT_SCALES
        assert item['gt_path'] == item['lq_path'] == dataset.paths[index]
        torch.testing.assert_close(item['lq'], progressive_input(item['gt'][None], item['scale'])[0])
        # Without augmentation the patch is an RGB crop of the image.
        hr = cv2.imread(item['gt_path'], cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.
        gt = item['gt'].permute(1, 2, 0).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(hr, gt.shape, axis=(0, 1, 2))
        assert (np.abs(windows - gt).max(axis=(-3, -2, -1)) < 1e-6).any()


def test_flips_and_rotations_are_applied(hr_folder):
    # A patch as large as the image can only be one of its 8 flips / rotations, and more than one must occur.
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, gt_size=64, scales=[2.0]))
    image = torch.from_numpy(cv2.imread(str(hr_folder / 'img1.png'))[..., ::-1].copy()).permute(2, 0, 1) / 255.
    transforms = [torch.rot90(flipped, k, (1, 2)) for flipped in (image, image.flip(2)) for k in range(4)]
    index = dataset.paths.index(str(hr_folder / 'img1.png'))
    random.seed(1)
    seen = set()
    for _ in range(40):
        gt = dataset[index]['gt']
        matches = [i for i, transformed in enumerate(transforms) if torch.allclose(gt, transformed, atol=1e-6)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 2


def test_scales_are_drawn_from_the_given_set(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, scales=[1.5, 2.0, 3.7]))
    random.seed(2)
    drawn = {round(float(dataset[i % 4]['scale']), 4) for i in range(60)}
    assert drawn == {1.5, 2.0, 3.7}


def test_scale_range_draws_multiples_of_a_hundredth(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, scale_range=[2.0, 2.1]))
    random.seed(3)
    drawn = [float(dataset[i % 4]['scale']) for i in range(80)]
    hundredths = {round(t * 100) for t in drawn}
    assert all(abs(t * 100 - round(t * 100)) < 1e-4 for t in drawn)
    assert hundredths <= set(range(200, 211)) and len(hundredths) > 5


def test_default_scales_are_the_papers():
    assert DEFAULT_SCALES == tuple(round(1.1 + 0.1 * k, 1) for k in range(30))
    assert DEFAULT_SCALES[0] == 1.1 and DEFAULT_SCALES[-1] == 4.0


def test_grayscale_images_become_three_channels(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder))
    gt = dataset[dataset.paths.index(str(hr_folder / 'gray.png'))]['gt']
    assert gt.shape[0] == 3 and torch.equal(gt[0], gt[1]) and torch.equal(gt[1], gt[2])


def test_batches_mix_scales(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder))
    random.seed(4)
    batch = next(iter(DataLoader(dataset, batch_size=4, shuffle=False)))
    assert batch['gt'].shape == batch['lq'].shape == (4, 3, 37, 37)
    assert batch['scale'].shape == (4,) and len(set(batch['scale'].tolist())) > 1
    torch.testing.assert_close(batch['lq'], progressive_input(batch['gt'], batch['scale']))


def test_lmdb_training_data_through_worker_processes(hr_folder, tmp_path):
    lmdb_path = tmp_path / 'HR.lmdb'
    make_lmdb(hr_folder, lmdb_path)
    opt = train_opt(lmdb_path, io_backend={'type': 'lmdb'})
    dataset = ContinuousScalePairedDataset(opt)
    assert sorted(dataset.paths) == ['gray', 'img0', 'img1', 'img2']
    assert opt['io_backend'] == {'type': 'lmdb'}  # the options are left as they were
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert [batch['gt'].shape for batch in batches] == [(2, 3, 37, 37)] * 2
    assert sorted(path for batch in batches for path in batch['gt_path']) == ['gray', 'img0', 'img1', 'img2']
    for batch in batches:
        torch.testing.assert_close(batch['lq'], progressive_input(batch['gt'], batch['scale']))


def test_an_image_smaller_than_the_patch_is_named(hr_folder):
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, gt_size=65))
    with pytest.raises(ValueError, match=r'img0.png is 60x70 \(HxW\), smaller than gt_size 65'):
        dataset[dataset.paths.index(str(hr_folder / 'img0.png'))]


def benchmark_opt(root, scale) -> dict:
    return {'phase': 'val', 'dataroot_gt': str(root), 'io_backend': {'type': 'disk'}, 'test_scale': scale}


@pytest.mark.parametrize('scale, lr_size, gt_size, source_size', [
    (1.5, (31, 29), (46, 43), (46, 43)),  # 50 and 47 are not multiples of 1.5: 4 rows and columns dropped
    (2.0, (25, 22), (50, 44), (50, 43)),  # the reference (44 wide) comes from the full image, not the dropped one
    (3.7, (13, 12), (48, 44), (46, 43)),  # ceil(46 / 3.7) = 13, int(13 * 3.7) = 48; ceil(43 / 3.7) = 12, 44
    (6.0, (8, 7), (48, 42), (48, 42)),  # LIIF above x4: h_lr = floor(50 / 6) = 8, reference 48, LR from it
])
def test_benchmark_pairs_follow_meta_sr_and_liif(tmp_path, scale, lr_size, gt_size, source_size):
    folder = tmp_path / 'HR'
    folder.mkdir()
    hr = smooth_image(np.random.default_rng(5), 50, 47)
    cv2.imwrite(str(folder / 'a.png'), hr)
    item = ContinuousScalePairedDataset(benchmark_opt(folder, scale))[0]
    assert set(item) == {'gt', 'lq', 'scale', 'gt_path', 'lq_path'}
    assert item['lq'].shape == (3, *lr_size) and item['gt'].shape == (3, *gt_size)
    assert float(item['scale']) == pytest.approx(scale)
    assert upscale_lr(item['lq'][None], item['scale']).shape[-2:] == gt_size
    rgb = hr[..., ::-1].astype(np.float32) / 255.
    np.testing.assert_array_equal(item['gt'].permute(1, 2, 0).numpy(), rgb[:gt_size[0], :gt_size[1]])
    source = rgb[:source_size[0], :source_size[1]]
    # BasicSR's MATLAB bicubic (its float sizes agree with the protocol's here), rounded to 8 bits.
    lr = basicsr_imresize(source, 1 / scale)
    assert lr.shape[:2] == lr_size
    expected = np.clip(np.round(lr * 255), 0, 255) / 255.
    assert np.abs(item['lq'].permute(1, 2, 0).numpy() - expected).max() <= 1 / 255 + 1e-6
    assert (np.abs(item['lq'].permute(1, 2, 0).numpy() - expected) > 1e-6).mean() < 0.01


def test_benchmark_pair_at_scale_one_is_the_image():
    hr = smooth_image(np.random.default_rng(6), 21, 17)
    lr, reference = benchmark_pair(hr, 1.0)
    np.testing.assert_array_equal(lr, hr)
    np.testing.assert_array_equal(reference, hr)
    with pytest.raises(ValueError, match='scale must be >= 1, got 0.5'):
        benchmark_pair(hr, 0.5)
    with pytest.raises(ValueError, match='a 21x17 image is too small for scale 20'):
        benchmark_pair(hr, 20.0)


def test_upscaled_lr_has_the_reference_size_at_every_scale():
    hr = smooth_image(np.random.default_rng(7), 321, 480)
    for t in (*DEFAULT_SCALES, 6.0, 8.0, 12.0):
        lr, reference = benchmark_pair(hr, t)
        sr = upscale_lr(torch.from_numpy(lr.astype(np.float32)).permute(2, 0, 1)[None], t)
        assert sr.shape[-2:] == reference.shape[:2], t


def metasr_psnr(sr: np.ndarray, hr: np.ndarray, scale: float) -> float:
    """Meta-SR's calc_psnr (benchmark mode) for BGR uint8 images: Y weights on the RGB difference, shave ceil(t)."""
    diff = (sr.astype(np.float64) - hr.astype(np.float64)) / 255.
    y = (diff[..., 2] * 65.738 + diff[..., 1] * 129.057 + diff[..., 0] * 25.064) / 256
    shave = math.ceil(scale)
    return -10 * math.log10(np.mean(y[shave:-shave, shave:-shave] ** 2))


@pytest.mark.parametrize('scale', [1.1, 2.5, 3.7, 4.0])
def test_basicsr_psnr_equals_the_meta_sr_formula(scale):
    # BasicSR's Y has an offset of 16 that cancels in the difference and weights 65.481 / 255 = 65.738 / 256 to
    # five digits, so calculate_psnr(crop_border=ceil(t), test_y_channel=True) is Meta-SR's PSNR.
    rng = np.random.default_rng(8)
    hr = smooth_image(rng, 90, 70)
    sr = np.clip(hr + rng.normal(0, 4, hr.shape), 0, 255).round().astype(np.uint8)
    basicsr_value = calculate_psnr(sr, hr, crop_border=math.ceil(scale), test_y_channel=True)
    assert basicsr_value == pytest.approx(metasr_psnr(sr, hr, scale), abs=1e-3)


@needs_shared_data('benchmark/B100/HR')
@pytest.mark.parametrize('scale', sorted(B100_BICUBIC))
def test_bicubic_on_b100_reproduces_the_protocol(scale):
    dataset = ContinuousScalePairedDataset(benchmark_opt(B100_HR, scale))
    assert len(dataset) == 100
    values = []
    for item in dataset:
        sr = upscale_lr(item['lq'][None], item['scale'], item['gt'].shape[-2:])
        values.append(calculate_psnr(tensor2img(sr), tensor2img(item['gt']), crop_border=math.ceil(scale),
                                     test_y_channel=True))
    assert np.mean(values) == pytest.approx(B100_BICUBIC[scale], abs=0.02)


@pytest.mark.parametrize('opt_change, message', [
    pytest.param({'scales': [1.0, 2.0]}, r'scales: .* > 1 .*got 1\.0', id='scale-one'),
    pytest.param({'scales': [2.0, 0.5]}, r'scales: .* > 1 .*got 0\.5', id='scale-below-one'),
    pytest.param({'scales': []}, r'scales: must be a non-empty list .*got \[\]', id='scales-empty'),
    pytest.param({'scales': 2.0}, r'scales: must be a non-empty list .*got 2\.0', id='scales-not-a-list'),
    pytest.param({'scales': [2.34567]}, r'scales: 2\.34567 has more than three decimals', id='scales-decimals'),
    pytest.param({'scale_range': [2.0, 1.5]}, r'scale_range: .*1 < low <= high, got \[2\.0, 1\.5\]', id='range-order'),
    pytest.param({'scale_range': [1.0, 2.0]}, r'scale_range: .*got \[1\.0, 2\.0\]', id='range-from-one'),
    pytest.param({'scale_range': [2.5]}, r'scale_range: .*got \[2\.5\]', id='range-length'),
    pytest.param({'scale_range': [2.001, 2.009]}, r'scale_range: \[2\.001, 2\.009\] contains no multiple of 0\.01',
                 id='range-empty'),
    pytest.param({'scales': [2.0], 'scale_range': [1.5, 2.0]}, r'scales and scale_range: give one', id='both'),
    pytest.param({'gt_size': None}, r'gt_size: .*positive integer, got None', id='gt-size-missing'),
    pytest.param({'gt_size': 0}, r'gt_size: .*positive integer, got 0', id='gt-size-zero'),
    pytest.param({'gt_size': 48.5}, r'gt_size: .*positive integer, got 48\.5', id='gt-size-float'),
    pytest.param({'use_hflip': 'yes'}, r"use_hflip: must be true or false, got 'yes'", id='use-hflip'),
    pytest.param({'use_rot': 1}, r'use_rot: must be true or false, got 1', id='use-rot'),
    pytest.param({'io_backend': {'type': 'memcached'}}, r"io_backend: type must be 'disk' or 'lmdb', got 'memcached'",
                 id='io-backend'),
    pytest.param({'dataroot_gt': None}, r'dataroot_gt: a folder of HR images is required, got None',
                 id='dataroot-missing'),
])
def test_bad_training_options_are_refused(hr_folder, opt_change, message):
    with pytest.raises(ValueError, match=message):
        ContinuousScalePairedDataset({**train_opt(hr_folder), **opt_change})


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match=f'dataroot_gt: folder {tmp_path / "nowhere"} does not exist'):
        ContinuousScalePairedDataset(train_opt(tmp_path / 'nowhere'))


def test_empty_folder_is_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    with pytest.raises(ValueError, match=f'dataroot_gt: folder {tmp_path / "empty"} holds no images'):
        ContinuousScalePairedDataset(train_opt(tmp_path / 'empty'))


def test_lmdb_without_meta_info_is_refused(hr_folder, tmp_path):
    lmdb_path = tmp_path / 'HR.lmdb'
    make_lmdb(hr_folder, lmdb_path)
    (lmdb_path / 'meta_info.txt').unlink()
    with pytest.raises(ValueError, match=f'dataroot_gt: LMDB {lmdb_path} has no meta_info.txt'):
        ContinuousScalePairedDataset(train_opt(lmdb_path, io_backend={'type': 'lmdb'}))


def test_lmdb_backend_needs_an_lmdb_folder(hr_folder):
    with pytest.raises(ValueError, match=f"dataroot_gt: {hr_folder} must end with '.lmdb'"):
        ContinuousScalePairedDataset(train_opt(hr_folder, io_backend={'type': 'lmdb'}))


def test_meta_info_file_selects_images_and_is_checked(hr_folder, tmp_path):
    meta = tmp_path / 'meta_info.txt'
    meta.write_text('img2.png (75,61,3) 1\nimg0.png (60,70,3) 1\n')
    dataset = ContinuousScalePairedDataset(train_opt(hr_folder, meta_info_file=str(meta)))
    assert dataset.paths == [str(hr_folder / 'img2.png'), str(hr_folder / 'img0.png')]
    meta.write_text('img9.png (75,61,3) 1\n')
    with pytest.raises(ValueError, match=f'meta_info_file: {meta} lists {hr_folder / "img9.png"}, which does not'):
        ContinuousScalePairedDataset(train_opt(hr_folder, meta_info_file=str(meta)))
    with pytest.raises(ValueError, match=f'meta_info_file: {tmp_path / "absent.txt"} does not exist'):
        ContinuousScalePairedDataset(train_opt(hr_folder, meta_info_file=str(tmp_path / 'absent.txt')))


@pytest.mark.parametrize('opt_change, message', [
    pytest.param({'test_scale': None}, r'test_scale: must be a number >= 1, got None', id='none'),
    pytest.param({'test_scale': 0.5}, r'test_scale: must be a number >= 1, got 0\.5', id='below-one'),
    pytest.param({'test_scale': 'x2'}, r"test_scale: must be a number >= 1, got 'x2'", id='text'),
])
def test_bad_test_scales_are_refused(hr_folder, opt_change, message):
    with pytest.raises(ValueError, match=message):
        ContinuousScalePairedDataset({**benchmark_opt(hr_folder, 2.0), **opt_change})


def test_test_scale_is_required_and_scale_is_not_it(hr_folder):
    opt = benchmark_opt(hr_folder, 2.0)
    del opt['test_scale']
    with pytest.raises(ValueError, match="test_scale: required .* not 'scale'"):
        ContinuousScalePairedDataset({**opt, 'scale': 2})
