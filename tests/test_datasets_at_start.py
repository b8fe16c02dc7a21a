"""Datasets checked at start through the real entry points: pairs of the wrong size for the scale, truncated or
malformed LMDBs, truncated or too small test images, and a launcher without its environment. Each gives one
``error:`` line and exit status 2 before anything is written, and leaves its inputs byte for byte as they were."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT, refused_by_command, tiny_train_options, tree_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from oisr_basicsr.data.preparation import make_lmdb
from oisr_cli.commands import test as test_entry
from oisr_cli.commands import train as train_entry


def _refused(entry, opt: dict, tmp_path: Path, monkeypatch, capsys, *extra: str) -> str:
    """Run ``entry.main`` on ``opt`` in a fresh working folder (:func:`conftest.refused_by_command`: exit status 2,
    one ``error:`` line, nothing written, the inputs unchanged); the line."""
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
    return refused_by_command(entry.main, ['-opt', str(option_file), *extra], tmp_path, monkeypatch, capsys)


def _test_options(hr_dir: Path, lr_dir: Path) -> dict:
    opt = tiny_train_options(hr_dir, lr_dir, 'start_checks', total_iter=2)
    dataset = {key: value for key, value in opt['datasets']['val'].items()}
    del opt['train']
    opt['datasets'] = {'test_1': {**dataset, 'name': 'tiny_test'}}
    return opt


def _write(path: Path, height: int, width: int) -> Path:
    cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))
    return path


def _val_copy(paired_folders, tmp_path: Path, opt: dict) -> tuple[Path, Path]:
    """Separate validation folders (copies of the training pairs), so a change to them leaves training alone."""
    hr_dir, lr_dir = paired_folders
    val_hr, val_lr = shutil.copytree(hr_dir, tmp_path / 'val' / 'HR'), shutil.copytree(lr_dir, tmp_path / 'val' / 'LR')
    opt['datasets']['val'].update(dataroot_gt=str(val_hr), dataroot_lq=str(val_lr))
    return Path(val_hr), Path(val_lr)


# ---------------------------------------------------------------------------------------------------------------
# Paired folders and the scale


def test_training_lq_that_is_not_gt_over_scale(paired_folders, tmp_path, monkeypatch, capsys):
    hr_dir, lr_dir = paired_folders
    _write(lr_dir / 'img1.png', 30, 32)
    line = _refused(train_entry, tiny_train_options(*paired_folders, 'pairs', 2), tmp_path, monkeypatch, capsys)
    assert line == (f'datasets.train: GT {hr_dir}/img1.* is 64x64 and LQ {lr_dir}/img1.* is 30x32 (HxW); training '
                    'crops patches of both at scale 2 and needs GT = LQ x 2 (60x64), so every GT side must be '
                    'divisible by 2; make the LQ images from the modcropped GT (oisr prepare-data).')


def test_training_gt_not_divisible_by_the_scale(paired_folders, tmp_path, monkeypatch, capsys):
    hr_dir, lr_dir = paired_folders
    _write(hr_dir / 'img2.png', 63, 64)
    _write(lr_dir / 'img2.png', 31, 32)  # the GT // 2: enough for validation, not for training's crops
    line = _refused(train_entry, tiny_train_options(*paired_folders, 'pairs', 2), tmp_path, monkeypatch, capsys)
    assert line.startswith(f'datasets.train: GT {hr_dir}/img2.* is 63x64 and LQ {lr_dir}/img2.* is 31x32 (HxW); '
                           'training crops patches of both at scale 2 and needs GT = LQ x 2 (62x64)')


def test_validation_lq_that_is_not_the_modcropped_gt_over_scale(paired_folders, tmp_path, monkeypatch, capsys):
    opt = tiny_train_options(*paired_folders, 'pairs', 2)
    val_hr, val_lr = _val_copy(paired_folders, tmp_path, opt)
    _write(val_lr / 'img3.png', 31, 32)  # BasicSR would crop the GT to 62x64 and score a shifted pair
    line = _refused(train_entry, opt, tmp_path, monkeypatch, capsys)
    assert line == (f'datasets.val: GT {val_hr}/img3.* is 64x64 and LQ {val_lr}/img3.* is 31x32 (HxW); at scale 2 '
                    'the LQ image must be 32x32 (the GT cropped to a multiple of the scale, divided by it): BasicSR '
                    'would crop the GT to LQ x scale and score images that do not correspond.')


def test_validation_gt_that_modcrop_makes_fit_passes(paired_folders, tmp_path):
    from oisr_basicsr.startup import validate_options

    opt = tiny_train_options(*paired_folders, 'pairs', 2)
    val_hr, val_lr = _val_copy(paired_folders, tmp_path, opt)
    _write(val_hr / 'img3.png', 65, 67)  # cropped to 64x66 by BasicSR: the LQ must be 32x33
    _write(val_lr / 'img3.png', 32, 33)
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase
    validate_options(opt)


def test_test_image_smaller_than_the_scale(paired_folders, tmp_path, monkeypatch, capsys):
    hr_dir, lr_dir = paired_folders
    _write(hr_dir / 'img0.png', 1, 64)
    _write(lr_dir / 'img0.png', 1, 32)
    line = _refused(test_entry, _test_options(*paired_folders), tmp_path, monkeypatch, capsys)
    assert line.startswith(f'datasets.test_1: GT {hr_dir}/img0.* is 1x64 and LQ {lr_dir}/img0.* is 1x32 (HxW); at '
                           'scale 2 the LQ image must be 0x32')


def test_benchmark_image_smaller_than_its_modcrop(paired_folders, tmp_path, monkeypatch, capsys):
    hr_dir, _ = paired_folders
    _write(hr_dir / 'img0.png', 64, 3)
    opt = _test_options(*paired_folders)
    opt['datasets']['test_1'] = {'name': 'bench', 'type': 'BenchmarkHRDataset', 'dataroot_gt': str(hr_dir),
                                 'io_backend': {'type': 'disk'}, 'modcrop': 4}
    line = _refused(test_entry, opt, tmp_path, monkeypatch, capsys)
    assert line == (f'datasets.test_1: {hr_dir}/img0.* is 64x3 (HxW), too small for scale 2: its crop to a multiple '
                    'of 4 (modcrop) is empty.')


@pytest.mark.parametrize('suffix', ['.png', '.jpg'])
def test_truncated_test_image_is_named(paired_folders, tmp_path, monkeypatch, capsys, suffix):
    hr_dir, lr_dir = paired_folders
    for folder in paired_folders:
        image = cv2.imread(str(folder / 'img2.png'))
        (folder / 'img2.png').unlink()
        cv2.imwrite(str(folder / f'img2{suffix}'), image)
    data = (lr_dir / f'img2{suffix}').read_bytes()
    (lr_dir / f'img2{suffix}').write_bytes(data[:len(data) * 2 // 3])  # the header intact, the pixels cut
    line = _refused(test_entry, _test_options(*paired_folders), tmp_path, monkeypatch, capsys)
    assert line.startswith(f'datasets.test_1.dataroot_lq: {lr_dir / f"img2{suffix}"}: truncated or corrupt (')


# ---------------------------------------------------------------------------------------------------------------
# The batch and the training set


@pytest.mark.parametrize(('batch', 'enlarge_ratio', 'lmdb'), [(5, 1, False), (9, 2, False), (5, 1, True)],
                         ids=['folder', 'enlarged', 'lmdb'])
def test_batch_larger_than_the_training_set(paired_folders, tmp_path, monkeypatch, capsys, batch, enlarge_ratio,
                                            lmdb):
    # BasicSR's loader drops the incomplete batch: every epoch would pass without an iteration, and the untrained
    # network be saved with exit status 0.
    opt = _lmdb_options(paired_folders, tmp_path) if lmdb else tiny_train_options(*paired_folders, 'batch', 2)
    opt['datasets']['train'].update(batch_size_per_gpu=batch, dataset_enlarge_ratio=enlarge_ratio)
    line = _refused(train_entry, opt, tmp_path, monkeypatch, capsys)
    drawn = 4 * enlarge_ratio
    assert line == (f'datasets.train.batch_size_per_gpu: {batch} is larger than the {drawn} images each process '
                    f'draws per epoch (4 training images x dataset_enlarge_ratio {enlarge_ratio} over 1 process); '
                    "BasicSR's loader drops an incomplete batch, so not one iteration would run; allowed: at most "
                    f'{drawn}.')


def test_batch_of_the_whole_training_set_passes(paired_folders):
    from oisr_basicsr.startup import validate_options

    opt = tiny_train_options(*paired_folders, 'batch', 2)
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase
    validate_options(opt)


# ---------------------------------------------------------------------------------------------------------------
# LMDB


def _lmdb_options(paired_folders, tmp_path: Path) -> dict:
    hr_dir, lr_dir = paired_folders
    make_lmdb(hr_dir, tmp_path / 'hr.lmdb')
    make_lmdb(lr_dir, tmp_path / 'lr.lmdb')
    opt = tiny_train_options(*paired_folders, 'lmdb', 2)
    opt['datasets']['train'].update(dataroot_gt=str(tmp_path / 'hr.lmdb'), dataroot_lq=str(tmp_path / 'lr.lmdb'),
                                    io_backend={'type': 'lmdb'})
    return opt


@pytest.mark.slow
def test_truncated_lmdb_is_refused_instead_of_a_bus_error(paired_folders, tmp_path):
    opt = _lmdb_options(paired_folders, tmp_path)
    data_file = tmp_path / 'lr.lmdb' / 'data.mdb'
    size = data_file.stat().st_size
    with data_file.open('r+b') as data:
        data.truncate(3 * 4096)  # the header pages intact, every entry's page beyond the end
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
    workdir = tmp_path / 'work'
    workdir.mkdir()
    inputs = tree_snapshot(tmp_path)
    run = subprocess.run([sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(option_file)], cwd=workdir,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'PYTHONPATH': str(REPO_ROOT), 'PYTHONWARNINGS': 'ignore'})
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])  # 135 is SIGBUS
    assert run.stderr.startswith(f'error: datasets.train.dataroot_lq: LMDB {tmp_path / "lr.lmdb"} is truncated: '
                                 f'{data_file} holds 12288 bytes, but its header counts ')
    assert run.stderr.count('\n') == 1
    assert size > 12288 and tree_snapshot(tmp_path) == inputs  # no run folder in workdir, the LMDB unchanged


@pytest.mark.parametrize(('damage', 'message'), [
    pytest.param(lambda data: b'\x5a' * 8192 + data[8192:], 'cannot be opened ({lmdb}: MDB_INVALID: File is not an '
                                                            'LMDB file).', id='header'),
    pytest.param(lambda data: data[:8192] + bytes(len(data) - 8192), 'is corrupt (mdb_get: MDB_CORRUPTED: Located '
                                                                     'page was wrong type); make the LMDB again.',
                 id='pages'),
])
def test_corrupt_lmdb_is_named(paired_folders, tmp_path, monkeypatch, capsys, damage, message):
    opt = _lmdb_options(paired_folders, tmp_path)
    data_file = tmp_path / 'lr.lmdb' / 'data.mdb'
    data_file.write_bytes(damage(data_file.read_bytes()))  # as long as before: the page count holds
    line = _refused(train_entry, opt, tmp_path, monkeypatch, capsys)
    lmdb = tmp_path / 'lr.lmdb'
    assert line == f'datasets.train.dataroot_lq: LMDB {lmdb} ' + message.format(lmdb=lmdb)


@pytest.mark.parametrize('line', ['img9.png', 'img9.png (64,x,3) 1', 'img9.png (64,64,3) 1 extra'])
def test_malformed_meta_info_line_is_named_with_its_number(paired_folders, tmp_path, monkeypatch, capsys, line):
    opt = _lmdb_options(paired_folders, tmp_path)
    meta_info = tmp_path / 'hr.lmdb' / 'meta_info.txt'
    meta_info.write_text(meta_info.read_text() + f'\n{line}\n')  # the empty line is skipped but counted
    refused = _refused(train_entry, opt, tmp_path, monkeypatch, capsys)
    assert refused == (f'datasets.train.dataroot_gt: {meta_info}, line 6: {line!r} is not <key>.<suffix> '
                       '(<height>,<width>,<channels>) <compression level>.')


# ---------------------------------------------------------------------------------------------------------------
# Launchers


@pytest.mark.parametrize(('launcher', 'variables'), [('pytorch', 'RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT'),
                                                     ('slurm', 'SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST')],
                         ids=['pytorch', 'slurm'])
def test_launcher_without_its_environment(paired_folders, tmp_path, monkeypatch, capsys, launcher, variables):
    for name in variables.split(', '):
        monkeypatch.delenv(name, raising=False)
    line = _refused(train_entry, tiny_train_options(*paired_folders, 'launch', 2), tmp_path, monkeypatch, capsys,
                    '--launcher', launcher)
    assert line.startswith(f'--launcher {launcher}: the environment lacks {variables}, which ')
    assert line.endswith('sets; start the run with it, or use --launcher none.')


# ---------------------------------------------------------------------------------------------------------------
# Run folders


@pytest.mark.parametrize('folder', ['experiments', 'tb_logger', 'experiments/run_folders'])
def test_run_folder_that_is_a_file(paired_folders, tmp_path, monkeypatch, capsys, folder):
    opt = tiny_train_options(*paired_folders, 'run_folders', 2)
    workdir = tmp_path / 'work'
    (workdir / folder).parent.mkdir(parents=True)
    (workdir / folder).write_text('a file where the run makes a folder')
    line = _refused(train_entry, opt, tmp_path, monkeypatch, capsys)
    key = 'logger.use_tb_logger' if folder == 'tb_logger' else 'path.experiments_root'
    made = workdir / ('tb_logger' if folder == 'tb_logger' else 'experiments') / 'run_folders'
    assert line == f'{key}: {made} cannot be created: {workdir / folder} is not a writable folder.'


@pytest.mark.parametrize('folder', ['results', 'results/run_folders'])
def test_results_folder_that_is_a_file(paired_folders, tmp_path, monkeypatch, capsys, folder):
    opt = _test_options(*paired_folders)
    opt['name'] = 'run_folders'
    workdir = tmp_path / 'work'
    (workdir / folder).parent.mkdir(parents=True, exist_ok=True)
    (workdir / folder).write_text('a file where the run makes a folder')
    line = _refused(test_entry, opt, tmp_path, monkeypatch, capsys)
    assert line == (f'path.results_root: {workdir / "results" / "run_folders"} cannot be created: {workdir / folder} '
                    'is not a writable folder.')


# ---------------------------------------------------------------------------------------------------------------
# The checks against random sizes (Hypothesis)


@st.composite
def _pairs(draw):
    """A GT size, a scale and an LQ size near GT / scale (often exactly it, often one pixel off)."""
    scale = draw(st.integers(2, 4))
    gt = (draw(st.integers(scale, 40)), draw(st.integers(scale, 40)))
    lq = tuple(draw(st.sampled_from([side // scale, side // scale, side // scale - 1, side // scale + 1,
                                     draw(st.integers(1, 20))])) for side in gt)
    return gt, tuple(max(side, 1) for side in lq), scale


@settings(max_examples=120, deadline=None)
@given(_pairs(), st.sampled_from(['train', 'val']))
def test_pairs_are_refused_exactly_when_they_break_the_scale(pair, phase):
    from oisr_basicsr.options import OptionError
    from oisr_basicsr.options.dataset_files import check_dataset_images

    gt, lq, scale = pair
    if phase == 'train':  # patches of both are cropped at the scale: nothing may be left over
        fits = all(lq_side * scale == gt_side for gt_side, lq_side in zip(gt, lq, strict=True))
    else:  # BasicSR crops the GT to LQ x scale: it may lose no more than the modcrop's remainder
        fits = all(0 <= gt_side - lq_side * scale < scale for gt_side, lq_side in zip(gt, lq, strict=True))
    with tempfile.TemporaryDirectory() as folder:
        hr_dir, lr_dir = Path(folder) / 'HR', Path(folder) / 'LR'
        hr_dir.mkdir()
        lr_dir.mkdir()
        _write(hr_dir / 'a.png', *gt)
        _write(lr_dir / 'a.png', *lq)
        dataset = {'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir), 'dataroot_lq': str(lr_dir),
                   'io_backend': {'type': 'disk'}}
        if fits:
            assert check_dataset_images(phase, dataset, scale) == {'dataroot_gt': {'a': gt}, 'dataroot_lq': {'a': lq}}
        else:
            with pytest.raises(OptionError) as error:
                check_dataset_images(phase, dataset, scale)
            assert str(error.value).startswith(f'datasets.{phase}: GT {hr_dir}/a.* is {gt[0]}x{gt[1]} and LQ '
                                               f'{lr_dir}/a.* is {lq[0]}x{lq[1]} (HxW)')


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(1, 4), st.data())
def test_the_batch_is_refused_exactly_when_basicsr_would_run_no_iteration(images, enlarge_ratio, world_size, data):
    import torch.utils.data
    from basicsr.data.data_sampler import EnlargedSampler

    from oisr_basicsr.options import OptionError
    from oisr_basicsr.options.dataset_sizes import check_batch_fits

    dataset = list(range(images))
    # Batches around what one process draws per epoch (its sampler's length) are where a rule goes wrong.
    drawn = len(EnlargedSampler(dataset, world_size, 0, enlarge_ratio))
    batch = data.draw(st.sampled_from([drawn - 1, drawn, drawn + 1]).filter(bool) | st.integers(1, 64))
    # The reference: BasicSR's own sampler and loader, on every rank, as create_train_val_dataloader builds them.
    iterations = min(len(torch.utils.data.DataLoader(dataset, batch_size=batch, drop_last=True,
                                                     sampler=EnlargedSampler(dataset, world_size, rank, enlarge_ratio)))
                     for rank in range(world_size))
    entry = {'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': enlarge_ratio}
    if iterations:
        check_batch_fits('datasets.train', entry, images, world_size)
    else:
        with pytest.raises(OptionError, match=rf'^datasets\.train\.batch_size_per_gpu: {batch} is larger than the '):
            check_batch_fits('datasets.train', entry, images, world_size)
