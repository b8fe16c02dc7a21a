"""Each bad input stops the run before any training step, with a message naming the key, file or value."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_train_options

from oisr_basicsr.data.preparation import make_lmdb
from oisr_basicsr.options import OptionError, validate_options


def _opt(paired_folders) -> dict:
    opt = tiny_train_options(*paired_folders, 'bad_input', total_iter=2)
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
    return opt


def test_good_options_pass(paired_folders):
    validate_options(_opt(paired_folders))


@pytest.mark.parametrize(('key', 'value', 'message'), [
    ('scheme', 'rk5', "network_g \\(OISR\\): scheme: 'rk5' is not supported; choose one of lf, rk2, rk3, euler"),
    ('g_variant', 'v4', "network_g \\(OISR\\): g_variant: 'v4' is not supported; choose one of v1, v2, v3, edsr"),
    ('upscale', 4, 'network_g.upscale is 4 but scale is 2'),
])
def test_bad_network_values(paired_folders, key, value, message):
    opt = _opt(paired_folders)
    opt['network_g'][key] = value
    with pytest.raises(OptionError, match=message):
        validate_options(opt)


def test_gt_size_not_divisible_by_scale(paired_folders):
    opt = _opt(paired_folders)
    opt['datasets']['train']['gt_size'] = 33
    with pytest.raises(OptionError, match='datasets.train.gt_size: 33 is not divisible by scale 2'):
        validate_options(opt)


def test_gt_size_larger_than_an_image(paired_folders):
    opt = _opt(paired_folders)
    opt['datasets']['train']['gt_size'] = 80
    with pytest.raises(OptionError, match=r'datasets.train.gt_size: 80 is larger than the GT image img\d \(64x64\)'):
        validate_options(opt)


def test_missing_folder(paired_folders, tmp_path):
    opt = _opt(paired_folders)
    opt['datasets']['train']['dataroot_lq'] = str(tmp_path / 'nowhere')
    with pytest.raises(OptionError, match=f'datasets.train.dataroot_lq: folder {tmp_path / "nowhere"} does not'):
        validate_options(opt)


def test_empty_folder(paired_folders, tmp_path):
    (tmp_path / 'empty').mkdir()
    opt = _opt(paired_folders)
    opt['datasets']['val']['dataroot_gt'] = str(tmp_path / 'empty')
    with pytest.raises(OptionError, match=f'datasets.val.dataroot_gt: folder {tmp_path / "empty"} holds no images'):
        validate_options(opt)


def test_unreadable_image_is_named(paired_folders):
    hr_dir, _ = paired_folders
    (hr_dir / 'img1.png').write_bytes(b'not a png at all')
    with pytest.raises(OptionError, match=r'datasets.train.dataroot_gt: .*img1.png: not a readable image'):
        validate_options(_opt(paired_folders))


def _lmdb_options(paired_folders, tmp_path) -> dict:
    hr_dir, lr_dir = paired_folders
    make_lmdb(hr_dir, tmp_path / 'hr.lmdb')
    make_lmdb(lr_dir, tmp_path / 'lr.lmdb')
    opt = _opt(paired_folders)
    opt['datasets']['train'].update(dataroot_gt=str(tmp_path / 'hr.lmdb'), dataroot_lq=str(tmp_path / 'lr.lmdb'),
                                    io_backend={'type': 'lmdb'})
    return opt


def test_lmdb_without_meta_info(paired_folders, tmp_path):
    opt = _lmdb_options(paired_folders, tmp_path)
    validate_options(opt)
    (tmp_path / 'lr.lmdb' / 'meta_info.txt').unlink()
    with pytest.raises(OptionError, match=f'datasets.train.dataroot_lq: {tmp_path / "lr.lmdb"} has no meta_info'):
        validate_options(opt)


def test_lmdb_keys_that_do_not_match(paired_folders, tmp_path):
    hr_dir, lr_dir = paired_folders
    cv2.imwrite(str(hr_dir / 'extra.png'), np.zeros((64, 64, 3), np.uint8))
    opt = _lmdb_options(paired_folders, tmp_path)
    with pytest.raises(OptionError, match=r'the GT and LQ LMDBs hold different keys \(1 differ, e.g. extra\)'):
        validate_options(opt)


@pytest.mark.usefixtures('basicsr_safeguards')  # the dataset the entry points build
def test_truncated_image_during_training_is_named(paired_folders):
    from basicsr.data import build_dataset

    hr_dir, _ = paired_folders
    opt = _opt(paired_folders)['datasets']['train']
    opt['scale'] = 2
    dataset = build_dataset(opt)
    data = (hr_dir / 'img2.png').read_bytes()
    (hr_dir / 'img2.png').write_bytes(data[:40])
    index = next(i for i, paths in enumerate(dataset.paths) if paths['gt_path'].endswith('img2.png'))
    with pytest.raises(OSError, match=r'Cannot read the image pair .*img2.png and .*img2.png'):
        dataset[index]


def test_grayscale_rgba_and_16_bit_images_are_read_as_8_bit_rgb(paired_folders):
    from basicsr.data import build_dataset

    hr_dir, lr_dir = paired_folders
    hr = cv2.imread(str(hr_dir / 'img0.png'))
    lr = cv2.imread(str(lr_dir / 'img0.png'))
    original_img1 = cv2.imread(str(hr_dir / 'img1.png'))
    cv2.imwrite(str(hr_dir / 'img0.png'), cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(lr_dir / 'img0.png'), cv2.cvtColor(lr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(hr_dir / 'img1.png'), original_img1.astype(np.uint16) * 257)
    opt = _opt(paired_folders)['datasets']['val']
    opt['scale'] = 2
    dataset = build_dataset(opt)
    items = {Path(dataset[i]['gt_path']).stem: dataset[i] for i in range(len(dataset))}
    for item in items.values():
        assert item['gt'].shape == (3, 64, 64) and item['lq'].shape == (3, 32, 32)
    gray = items['img0']['gt']
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # grey replicated to three channels
    rgba_lq = items['img0']['lq'].permute(1, 2, 0).numpy()[..., ::-1]  # alpha dropped, colour kept
    assert np.allclose(rgba_lq * 255, lr, atol=0.5)
    sixteen_bit = items['img1']['gt'].permute(1, 2, 0).numpy()[..., ::-1]  # scaled to 8 bits
    assert np.allclose(sixteen_bit * 255, original_img1, atol=0.5)
