"""The files an option file names are checked at start: checkpoints, resume states, image headers, LMDBs and the
folders BasicSR writes to; each problem is one line naming the key and the file."""

import struct
import sys
import zlib

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_train_options

import oisr_basicsr.options.reading as options
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.data.preparation import make_lmdb
from oisr_basicsr.options import OptionError, validate_options


def _opt(paired_folders) -> dict:
    opt = tiny_train_options(*paired_folders, 'file_checks', total_iter=2)
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
    return opt


def _tiny_oisr_weights(path, num_feat: int) -> None:
    net = OISR(num_feat=num_feat, num_block=1, upscale=2, scheme='lf', g_variant='v2')
    torch.save({'params': net.state_dict()}, path)


def test_missing_pretrain_file(paired_folders, tmp_path):
    opt = _opt(paired_folders)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'nowhere.pth')
    with pytest.raises(OptionError, match=f'^path.pretrain_network_g: {tmp_path / "nowhere.pth"} does not exist.$'):
        validate_options(opt)


def test_pretrain_folder_is_not_a_file(paired_folders, tmp_path):
    opt = _opt(paired_folders)
    opt['path']['pretrain_network_g'] = str(tmp_path)
    with pytest.raises(OptionError, match=f'^path.pretrain_network_g: {tmp_path} is not a file.$'):
        validate_options(opt)


def test_truncated_checkpoint_names_the_file(paired_folders, tmp_path):
    weights = tmp_path / 'net_g.pth'
    _tiny_oisr_weights(weights, num_feat=8)
    opt = _opt(paired_folders)
    opt['path']['pretrain_network_g'] = str(weights)
    validate_options(opt)  # the whole file fits
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    with pytest.raises(OptionError, match=f'^path.pretrain_network_g: {weights} is truncated \\(its zip directory '
                                          'is missing\\); save it again or use an earlier one.$'):
        validate_options(opt)


def _resume_layout(tmp_path, num_feat: int):
    experiment = tmp_path / 'experiments' / 'file_checks'
    (experiment / 'training_states').mkdir(parents=True)
    (experiment / 'models').mkdir()
    state = experiment / 'training_states' / '4.state'
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, state)
    _tiny_oisr_weights(experiment / 'models' / 'net_g_4.pth', num_feat)
    return state, experiment / 'models' / 'net_g_4.pth'


def test_resume_state_whose_network_does_not_fit(paired_folders, tmp_path):
    state, weights = _resume_layout(tmp_path, num_feat=16)
    opt = _opt(paired_folders)
    opt['path']['resume_state'] = str(state)
    wanted, saved = (OISR(num_feat=n, num_block=1, upscale=2).state_dict() for n in (8, 16))
    first = next(name for name in wanted if wanted[name].shape != saved[name].shape)
    with pytest.raises(OptionError) as error:
        validate_options(opt)
    assert str(error.value) == (f'path.resume_state: {weights} does not fit network_g (OISR): parameter {first} has '
                                'shape (16, 3, 3, 3) in the checkpoint and (8, 3, 3, 3) in the network.')


def test_resume_state_that_fits_passes(paired_folders, tmp_path):
    state, _ = _resume_layout(tmp_path, num_feat=8)
    opt = _opt(paired_folders)
    opt['path']['resume_state'] = str(state)
    validate_options(opt)


def test_resume_mismatch_through_the_entry_point(paired_folders, tmp_path, monkeypatch, capsys):
    from oisr_basicsr import train

    state, weights = _resume_layout(tmp_path, num_feat=16)
    opt = tiny_train_options(*paired_folders, 'file_checks', total_iter=6)
    opt['path']['resume_state'] = str(state)
    option_file = tmp_path / 'resume.yml'
    option_file.write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['oisr-train', '-opt', str(option_file)])
    with pytest.raises(SystemExit) as exit_:
        train.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: path.resume_state: {weights} does not fit network_g (OISR): parameter ')
    assert err.count('\n') == 1 and 'Traceback' not in err


def _png_header_claiming(path, width: int, height: int) -> None:
    """A PNG whose header announces ``width`` x ``height`` pixels (its data is that of a 1x1 image)."""
    ok, data = cv2.imencode('.png', np.zeros((1, 1, 3), np.uint8))
    data = bytearray(data.tobytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack('>II', width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack('>I', zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_header_is_refused(paired_folders):
    hr_dir, _ = paired_folders
    _png_header_claiming(hr_dir / 'bomb.png', 20000, 20000)
    with pytest.raises(OptionError, match=r'^datasets.train.dataroot_gt: .*bomb.png is refused from its header: '
                                          r'Image size \(400000000 pixels\) exceeds limit'):
        validate_options(_opt(paired_folders))


def test_image_over_the_pixel_limit_is_refused(paired_folders, monkeypatch):
    monkeypatch.setattr(options, 'IMAGE_PIXEL_LIMIT', 64 * 64 - 1)
    with pytest.raises(OptionError, match=r'^datasets.train.dataroot_gt: .*img0.png announces 64x64 pixels in its '
                                          r'header, more than the limit of 4095'):
        validate_options(_opt(paired_folders))


def _lmdb_options(paired_folders, tmp_path) -> dict:
    hr_dir, lr_dir = paired_folders
    make_lmdb(hr_dir, tmp_path / 'hr.lmdb')
    make_lmdb(lr_dir, tmp_path / 'lr.lmdb')
    opt = _opt(paired_folders)
    opt['datasets']['train'].update(dataroot_gt=str(tmp_path / 'hr.lmdb'), dataroot_lq=str(tmp_path / 'lr.lmdb'),
                                    io_backend={'type': 'lmdb'})
    return opt


def test_lmdb_key_listed_but_absent(paired_folders, tmp_path):
    opt = _lmdb_options(paired_folders, tmp_path)
    for name in ('hr', 'lr'):
        with open(tmp_path / f'{name}.lmdb' / 'meta_info.txt', 'a') as meta_info:
            meta_info.write('ghost.png (64,64,3) 1\n')
    with pytest.raises(OptionError, match=f"^datasets.train.dataroot_gt: LMDB {tmp_path / 'hr.lmdb'} has no entry "
                                          "'ghost', which its meta_info.txt lists.$"):
        validate_options(opt)


def test_same_lmdb_for_train_without_workers_and_val(paired_folders, tmp_path):
    opt = _lmdb_options(paired_folders, tmp_path)
    opt['datasets']['val'].update(dataroot_gt=opt['datasets']['train']['dataroot_gt'],
                                  dataroot_lq=opt['datasets']['train']['dataroot_lq'], io_backend={'type': 'lmdb'})
    with pytest.raises(OptionError, match=r'^datasets.val.dataroot_gt: LMDB .*hr.lmdb is also read by '
                                          r'datasets.train.dataroot_gt in the same process'):
        validate_options(opt)
    opt['datasets']['train']['num_worker_per_gpu'] = 1  # the training set is read in worker processes
    validate_options(opt)


def test_experiment_root_that_cannot_be_created(paired_folders, tmp_path):
    (tmp_path / 'plain_file').write_text('not a folder')
    opt = _opt(paired_folders)
    opt['path']['experiments_root'] = str(tmp_path / 'plain_file' / 'experiments' / 'x')
    with pytest.raises(OptionError, match=f'^path.experiments_root: .* cannot be created: {tmp_path / "plain_file"} '
                                          'is not a writable folder.$'):
        validate_options(opt)


def test_meta_info_file_that_is_not_a_file(paired_folders, tmp_path):
    opt = _opt(paired_folders)
    opt['datasets']['val']['meta_info_file'] = str(tmp_path / 'absent.txt')
    with pytest.raises(OptionError, match=f'^datasets.val.meta_info_file: {tmp_path / "absent.txt"} is not a file.$'):
        validate_options(opt)


def test_paired_folders_whose_names_do_not_match(paired_folders):
    hr_dir, lr_dir = paired_folders
    (lr_dir / 'img3.png').rename(lr_dir / 'img3_x2.png')
    with pytest.raises(OptionError, match=f'^datasets.train.dataroot_lq: {lr_dir} has no img3.png, the LQ image of '
                                          f"{hr_dir / 'img3.png'} \\(filename_tmpl: '{{}}'\\).$"):
        validate_options(_opt(paired_folders))


def test_paired_folder_with_a_file_that_is_not_an_image(paired_folders):
    hr_dir, _ = paired_folders
    (hr_dir / 'notes.txt').write_text('not an image')
    with pytest.raises(OptionError, match=f'^datasets.train.dataroot_gt: {hr_dir} holds notes.txt, which is not an '
                                          'image; PairedImageDataset reads every file of its folders.$'):
        validate_options(_opt(paired_folders))


def test_file_that_is_no_checkpoint_names_the_file(paired_folders, tmp_path):
    weights = tmp_path / 'notes.pth'
    weights.write_text('not a checkpoint')
    opt = _opt(paired_folders)
    opt['path']['pretrain_network_g'] = str(weights)
    with pytest.raises(OptionError, match=f'^path.pretrain_network_g: {weights} was not loaded'):
        validate_options(opt)
