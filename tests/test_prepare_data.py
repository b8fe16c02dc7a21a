"""Data preparation: sub-images, LR images, benchmark folders and LMDBs that BasicSR's own readers accept."""

import subprocess
import sys
from pathlib import Path

import oisr_basicsr  # noqa: F401  (patches torchvision before basicsr is first imported)

# isort: split
import cv2
import numpy as np
import pytest
import torch
from basicsr.data.data_util import paired_paths_from_lmdb
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.metrics import calculate_psnr
from basicsr.utils import FileClient, imfrombytes
from basicsr.utils.matlab_functions import imresize
from conftest import SHARED_DATA, needs_shared_data

from oisr_basicsr.data.preparation import (
    extract_subimages,
    make_benchmark_folders,
    make_lmdb,
    make_lr_images,
    prepare_training_data,
)
from oisr_basicsr.data.resize import imresize_uint8, modcrop
from oisr_cli.commands import prepare_data

REPO = Path(__file__).resolve().parents[1]
SET5_HR = SHARED_DATA / 'benchmark' / 'Set5' / 'HR'


def write_noise(path: Path, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random pixels, so that every crop is unique and a misplaced one cannot match."""
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return img


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def basicsr_lr(img: np.ndarray, scale: int) -> np.ndarray:
    return np.clip(np.round(imresize(img.astype(np.float32) / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)


def test_imresize_uint8_is_basicsr_imresize_rounded():
    img = np.random.default_rng(1).integers(0, 256, (36, 48, 3), dtype=np.uint8)
    for scale in (2, 3, 4):
        out = imresize_uint8(img, 1 / scale)
        assert out.dtype == np.uint8 and out.shape == (36 // scale, 48 // scale, 3)
        np.testing.assert_array_equal(out, basicsr_lr(img, scale))
    gray = img[..., 0]
    np.testing.assert_array_equal(imresize_uint8(gray, 1 / 2), basicsr_lr(gray, 2))
    with pytest.raises(ValueError, match='uint8'):
        imresize_uint8(img.astype(np.float32), 1 / 2)


def test_modcrop_keeps_the_top_left_corner():
    img = np.arange(25 * 38 * 3).reshape(25, 38, 3)
    np.testing.assert_array_equal(modcrop(img, 12), img[:24, :36])
    assert modcrop(img[..., 0], 4).shape == (24, 36)
    with pytest.raises(ValueError, match='smaller than the crop multiple 12'):
        modcrop(img[:10], 12)


@pytest.mark.parametrize('thresh_size, expected_lefts', [(0, [0, 20, 40, 60, 80, 82]), (5, [0, 20, 40, 60, 80])])
def test_subimage_positions_follow_basicsr(tmp_path, thresh_size, expected_lefts):
    # h=100, crop 48, step 20: range(0, 53, 20) = 0, 20, 40, and 100 - 88 = 12 px uncovered -> a last crop at 52.
    # w=130: range(0, 83, 20) = 0..80 leaves 2 px, covered by a crop at 82 unless thresh_size >= 2.
    img = write_noise(tmp_path / 'in' / 'pic.png', (100, 130, 3))
    count = extract_subimages(tmp_path / 'in', tmp_path / 'out', crop_size=48, step=20, thresh_size=thresh_size,
                              num_workers=1)
    positions = [(top, left) for top in (0, 20, 40, 52) for left in expected_lefts]
    assert count == len(positions)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [f'pic_s{i:03d}.png' for i in range(1, count + 1)]
    for index, (top, left) in enumerate(positions, start=1):
        np.testing.assert_array_equal(read(tmp_path / 'out' / f'pic_s{index:03d}.png'),
                                      img[top:top + 48, left:left + 48])


def test_subimages_of_gray_and_jpeg_inputs(tmp_path):
    gray = write_noise(tmp_path / 'in' / 'gray.PNG', (40, 40))
    assert cv2.imwrite(str(tmp_path / 'in' / 'photo.JPG'), np.full((40, 40, 3), 90, np.uint8))
    (tmp_path / 'in' / 'notes.txt').write_text('not an image')
    assert extract_subimages(tmp_path / 'in', tmp_path / 'out', crop_size=40, step=40, num_workers=1) == 2
    np.testing.assert_array_equal(read(tmp_path / 'out' / 'gray_s001.png'), gray)
    assert read(tmp_path / 'out' / 'photo_s001.png').shape == (40, 40, 3)


def test_image_smaller_than_crop_is_named(tmp_path):
    write_noise(tmp_path / 'in' / 'big.png', (64, 64, 3))
    write_noise(tmp_path / 'in' / 'tiny.png', (40, 50, 3))
    with pytest.raises(ValueError, match=r'tiny\.png: 50x40 pixels is too small; crop_size 48 needs at least 48 '
                                         'pixels on each side'):
        extract_subimages(tmp_path / 'in', tmp_path / 'out', crop_size=48, step=24, num_workers=1)
    assert not (tmp_path / 'out').exists(), 'a failed run must not leave a partial output folder'


def test_unreadable_and_16_bit_images_are_named(tmp_path):
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'bad\.png: not a readable image'):
        make_lr_images(tmp_path / 'broken', tmp_path / 'lr', 2, num_workers=1)
    (tmp_path / 'deep').mkdir()
    assert cv2.imwrite(str(tmp_path / 'deep' / 'deep.png'), np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match=r'deep\.png has uint16 pixels; only 8-bit images are supported'):
        make_lr_images(tmp_path / 'deep', tmp_path / 'lr', 2, num_workers=1)


def test_lr_images_are_basicsr_imresize(tmp_path):
    color = write_noise(tmp_path / 'hr' / 'a.png', (24, 36, 3), seed=1)
    gray = write_noise(tmp_path / 'hr' / 'b.bmp', (12, 24), seed=2)
    assert make_lr_images(tmp_path / 'hr', tmp_path / 'lr', 3, num_workers=1) == 2
    assert sorted(p.name for p in (tmp_path / 'lr').iterdir()) == ['a.png', 'b.png']
    np.testing.assert_array_equal(read(tmp_path / 'lr' / 'a.png'), basicsr_lr(color, 3))
    np.testing.assert_array_equal(read(tmp_path / 'lr' / 'b.png'), basicsr_lr(gray, 3))


def test_lr_needs_hr_sizes_that_are_multiples_of_the_scale(tmp_path):
    write_noise(tmp_path / 'hr' / 'odd.png', (24, 26, 3))
    with pytest.raises(ValueError, match=r'odd\.png is 24x26 \(HxW\), which is not a multiple of scale 4'):
        make_lr_images(tmp_path / 'hr', tmp_path / 'new' / 'lr', 4, num_workers=1)
    assert not (tmp_path / 'new').exists(), 'the parent folder made for the output must go as well'


def test_missing_and_empty_input_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'image folder .*nowhere does not exist'):
        make_lr_images(tmp_path / 'nowhere', tmp_path / 'lr', 2)
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match=r'image folder .*empty holds no images'):
        extract_subimages(tmp_path / 'empty', tmp_path / 'out')
    with pytest.raises(ValueError, match=r'image folder .*empty holds no images'):
        make_lmdb(tmp_path / 'empty', tmp_path / 'x.lmdb')


def test_benchmark_folders(tmp_path):
    img = write_noise(tmp_path / 'HR' / 'pic.png', (50, 39, 3))
    outputs = make_benchmark_folders(tmp_path / 'HR', tmp_path / 'Set', scales=(4, 2, 3), num_workers=1)
    assert outputs == [tmp_path / 'Set' / name for name in ('GTmod12', 'LRbicx2', 'LRbicx3', 'LRbicx4')]
    gt = read(tmp_path / 'Set' / 'GTmod12' / 'pic.png')
    np.testing.assert_array_equal(gt, img[:48, :36])
    for scale in (2, 3, 4):
        np.testing.assert_array_equal(read(tmp_path / 'Set' / f'LRbicx{scale}' / 'pic.png'), basicsr_lr(gt, scale))
    with pytest.raises(ValueError, match='scale 8 does not divide 12'):
        make_benchmark_folders(tmp_path / 'HR', tmp_path / 'Set8', scales=(8,))
    with pytest.raises(FileExistsError, match=r'GTmod12 already exists'):
        make_benchmark_folders(tmp_path / 'HR', tmp_path / 'Set', scales=(2,))


@needs_shared_data('benchmark/Set5/HR')
def test_set5_benchmark_reproduces_the_published_bicubic_baseline(tmp_path):
    make_benchmark_folders(SET5_HR, tmp_path, num_workers=1)
    # Published bicubic PSNR (Y channel, s-pixel border shaved); GTmod12 differs from the papers' mod-s crop
    # only in a few border rows of woman.png.
    for scale, published in ((2, 33.66), (3, 30.39), (4, 28.42)):
        psnrs = []
        for gt_path in sorted((tmp_path / 'GTmod12').iterdir()):
            gt = read(gt_path)
            upsampled = imresize_uint8(read(tmp_path / f'LRbicx{scale}' / gt_path.name), scale)
            psnrs.append(calculate_psnr(upsampled, gt, crop_border=scale, test_y_channel=True))
        assert np.mean(psnrs) == pytest.approx(published, abs=0.05)


def test_lmdb_round_trip_through_basicsr_reader(tmp_path):
    images = {'0001_s001': write_noise(tmp_path / 'imgs' / '0001_s001.png', (12, 10, 3), seed=1),
              'gray': write_noise(tmp_path / 'imgs' / 'gray.png', (7, 9), seed=2),
              'big': write_noise(tmp_path / 'imgs' / 'big.png', (64, 80, 3), seed=3)}
    lmdb_path = tmp_path / 'imgs.lmdb'
    assert make_lmdb(tmp_path / 'imgs', lmdb_path) == 3
    assert (lmdb_path / 'meta_info.txt').read_text().splitlines() == [
        '0001_s001.png (12,10,3) 1', 'big.png (64,80,3) 1', 'gray.png (7,9,1) 1']
    client = FileClient('lmdb', db_paths=[str(lmdb_path)], client_keys=['gt'])
    for key, img in images.items():
        np.testing.assert_array_equal(imfrombytes(client.get(key, 'gt'), flag='unchanged'), img)


def test_lmdb_errors(tmp_path):
    write_noise(tmp_path / 'imgs' / 'a.png', (8, 8, 3))
    with pytest.raises(ValueError, match=r"must end with '\.lmdb'"):
        make_lmdb(tmp_path / 'imgs', tmp_path / 'imgs_lmdb')
    (tmp_path / 'taken.lmdb').mkdir()
    with pytest.raises(FileExistsError, match=r'taken\.lmdb already exists'):
        make_lmdb(tmp_path / 'imgs', tmp_path / 'taken.lmdb')
    write_noise(tmp_path / 'imgs' / '0001.x2.png', (8, 8, 3))
    with pytest.raises(ValueError, match=r"0001\.x2\.png: LMDB keys are file stems.*would come back as '0001'"):
        make_lmdb(tmp_path / 'imgs', tmp_path / 'dotted.lmdb')
    assert not (tmp_path / 'dotted.lmdb').exists()


def test_prepare_training_data_feeds_basicsr_paired_dataset(tmp_path):
    hr = {'0001': write_noise(tmp_path / 'HR' / '0001.png', (60, 72, 3), seed=1),
          '0002': write_noise(tmp_path / 'HR' / '0002.png', (48, 48, 3), seed=2)}
    root = tmp_path / 'DIV2K'
    outputs = prepare_training_data(tmp_path / 'HR', root, 'DIV2K_train', scales=[3, 2], crop_size=24, step=12,
                                    num_workers=1)
    names = ['DIV2K_train_HR_sub', 'DIV2K_train_LR_bicubic/X2_sub', 'DIV2K_train_LR_bicubic/X3_sub',
             'DIV2K_train_HR_sub.lmdb', 'DIV2K_train_LR_bicubic_X2_sub.lmdb', 'DIV2K_train_LR_bicubic_X3_sub.lmdb']
    assert outputs == [root / name for name in names]
    # 0001: rows 0, 12, 24, 36 and columns 0, 12, ..., 48 -> 4 x 5 crops; 0002: 3 x 3 crops.
    hr_sub = sorted((root / 'DIV2K_train_HR_sub').iterdir())
    assert [p.name for p in hr_sub] == [f'0001_s{i:03d}.png' for i in range(1, 21)] + [
        f'0002_s{i:03d}.png' for i in range(1, 10)]
    np.testing.assert_array_equal(read(hr_sub[6]), hr['0001'][12:36, 12:36])
    for scale in (2, 3):
        lr_dir = root / 'DIV2K_train_LR_bicubic' / f'X{scale}_sub'
        assert sorted(p.name for p in lr_dir.iterdir()) == [p.name for p in hr_sub]
        np.testing.assert_array_equal(read(lr_dir / hr_sub[6].name), basicsr_lr(read(hr_sub[6]), scale))

    gt_lmdb, lq_lmdb = str(root / 'DIV2K_train_HR_sub.lmdb'), str(root / 'DIV2K_train_LR_bicubic_X3_sub.lmdb')
    pairs = paired_paths_from_lmdb([lq_lmdb, gt_lmdb], ['lq', 'gt'])
    assert [pair['gt_path'] for pair in pairs] == [p.stem for p in hr_sub]
    dataset = PairedImageDataset({'dataroot_gt': gt_lmdb, 'dataroot_lq': lq_lmdb, 'io_backend': {'type': 'lmdb'},
                                  'phase': 'val', 'scale': 3})
    item = dataset[6]
    assert item['gt_path'] == hr_sub[6].stem
    expected_gt = torch.from_numpy(hr['0001'][12:36, 12:36, ::-1].astype(np.float32) / 255.).permute(2, 0, 1)
    assert torch.equal(item['gt'], expected_gt)
    assert item['lq'].shape == (3, 8, 8)


def test_prepare_training_data_refuses_before_doing_any_work(tmp_path):
    write_noise(tmp_path / 'HR' / '0001.png', (48, 48, 3))
    (tmp_path / 'out' / 'DIV2K_train_LR_bicubic' / 'X4_sub').mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r'DIV2K_train_LR_bicubic/X4_sub already exists'):
        prepare_training_data(tmp_path / 'HR', tmp_path / 'out', 'DIV2K_train', [2, 4], crop_size=24, step=24)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['DIV2K_train_LR_bicubic']
    with pytest.raises(ValueError, match='crop_size 480 is not divisible by scale 7'):
        prepare_training_data(tmp_path / 'HR', tmp_path / 'other', 'DIV2K_train', [2, 7])
    write_noise(tmp_path / 'dotted' / '0001.x.png', (48, 48, 3))
    with pytest.raises(ValueError, match=r"0001\.x\.png: LMDB keys are file stems"):
        prepare_training_data(tmp_path / 'dotted', tmp_path / 'other', 'DIV2K_train', [2], crop_size=24, step=24)
    assert not (tmp_path / 'other').exists()


def test_failed_training_run_leaves_nothing_behind(tmp_path):
    write_noise(tmp_path / 'HR' / '0001.png', (48, 48, 3))
    write_noise(tmp_path / 'HR' / '0002.png', (20, 48, 3))
    with pytest.raises(ValueError, match=r'0002\.png: 48x20 pixels is too small; crop_size 24 needs at least 24 '
                                         'pixels on each side'):
        prepare_training_data(tmp_path / 'HR', tmp_path / 'datasets' / 'DIV2K', 'DIV2K_train', [2], crop_size=24,
                              step=24, num_workers=1)
    assert not (tmp_path / 'datasets').exists()


def load_cli():
    return prepare_data


def test_cli_exits_with_status_2_and_no_traceback(tmp_path):
    # One real process (importing torch and BasicSR takes seconds); the other paths are checked in-process below.
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'prepare-data', 'benchmark', '--input',
                             str(tmp_path / 'missing'), '--output', str(tmp_path / 'Set5')], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == f'error: image folder {tmp_path / "missing"} does not exist'


def test_cli_subcommands(tmp_path, capsys):
    cli = load_cli()
    write_noise(tmp_path / 'HR' / 'a.png', (48, 48, 3))
    train = ['train', '--input', str(tmp_path / 'HR'), '--output', str(tmp_path / 'out'), '--name', 'X']
    assert cli.main([*train, '--scales', '5', '--crop-size', '48']) == 2
    assert capsys.readouterr().err == ('error: crop_size 48 is not divisible by scale 5, '
                                       'so the x5 LR sub-images would not line up with the HR ones\n')
    assert cli.main([*train, '--scales', '2', '--crop-size', '24', '--step', '24', '--no-lmdb', '--num-workers',
                     '1']) == 0
    assert capsys.readouterr().out.splitlines() == [f'created {tmp_path / "out" / "X_HR_sub"}',
                                                    f'created {tmp_path / "out" / "X_LR_bicubic" / "X2_sub"}']
    assert len(list((tmp_path / 'out' / 'X_LR_bicubic' / 'X2_sub').iterdir())) == 4

    benchmark = ['benchmark', '--input', str(tmp_path / 'HR'), '--output', str(tmp_path / 'Set'), '--num-workers', '1']
    assert cli.main(benchmark) == 0
    assert sorted(p.name for p in (tmp_path / 'Set').iterdir()) == ['GTmod12', 'LRbicx2', 'LRbicx3', 'LRbicx4']
    capsys.readouterr()
    assert cli.main(benchmark) == 2
    assert capsys.readouterr().err == (f'error: {tmp_path / "Set" / "GTmod12"} already exists; '
                                       'remove it or choose another output location\n')


def test_worker_processes_give_the_same_images(tmp_path):
    for seed in range(3):
        write_noise(tmp_path / 'HR' / f'img{seed}.png', (36, 24, 3), seed=seed)
    make_benchmark_folders(tmp_path / 'HR', tmp_path / 'Set', scales=(2,), num_workers=2)
    for seed in range(3):
        gt = read(tmp_path / 'HR' / f'img{seed}.png')
        np.testing.assert_array_equal(read(tmp_path / 'Set' / 'LRbicx2' / f'img{seed}.png'), basicsr_lr(gt, 2))
