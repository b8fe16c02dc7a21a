"""The files an option file names are checked at start: checkpoints, resume states, image headers, LMDBs and the
folders BasicSR writes to; each problem is one line naming the key and the file."""

import contextlib
import io
import struct
import sys
import warnings
import zlib

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import run_arguments, run_entry_point, tiny_train_options

import oisr_basicsr.options.dataset_files as dataset_files
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.checkpoints.io import atomic_save
from oisr_basicsr.data.preparation import make_lmdb
from oisr_basicsr.options import OptionError, report_user_errors
from oisr_basicsr.safeguards import resume
from oisr_basicsr.startup import parse_and_validate_options, validate_options


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
    from oisr_cli.commands import train

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
    # PIL's own refusal (twice its limit) is not taken from the header: the size is, and the limit names it.
    with pytest.raises(OptionError, match=r'^datasets.train.dataroot_gt: .*bomb.png announces 20000x20000 pixels in '
                                          r'its header, more than the limit of 89478485'):
        validate_options(_opt(paired_folders))


def test_image_over_the_pixel_limit_is_refused(paired_folders, monkeypatch):
    monkeypatch.setattr(dataset_files, 'IMAGE_PIXEL_LIMIT', 64 * 64 - 1)
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
    for name, side in (('hr', 64), ('lr', 32)):
        with open(tmp_path / f'{name}.lmdb' / 'meta_info.txt', 'a') as meta_info:
            meta_info.write(f'ghost.png ({side},{side},3) 1\n')
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


# ----------------------------------------------------------------------------------------------------------------
# --auto_resume: the state it will pick, and the network that state was saved with, are checked at start


def _trained_run(tmp_path, iterations: dict[int, int], suffix: str = '.pth'):
    """``experiments/file_checks`` as a run leaves it: ``<iter>.state`` and ``net_g_<iter><suffix>`` of a tiny OISR
    with ``num_feat`` given per iteration."""
    experiment = tmp_path / 'experiments' / 'file_checks'
    (experiment / 'training_states').mkdir(parents=True)
    (experiment / 'models').mkdir()
    for iteration, num_feat in iterations.items():
        torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': []},
                   experiment / 'training_states' / f'{iteration}.state')
        net = OISR(num_feat=num_feat, num_block=1, upscale=2, scheme='lf', g_variant='v2')
        atomic_save({'params': net.state_dict()}, experiment / 'models' / f'net_g_{iteration}{suffix}')
    return experiment


def _start_auto_resume(paired_folders, tmp_path, num_feat: int, *extra: str) -> tuple[int, str]:
    """The training start-up check of an option file asking for ``num_feat`` (exit status, stderr)."""
    opt = tiny_train_options(*paired_folders, 'file_checks', total_iter=8)
    opt['network_g']['num_feat'] = num_feat
    option_file = tmp_path / 'train.yml'
    option_file.write_text(yaml.safe_dump(opt))
    stderr = io.StringIO()
    with contextlib.ExitStack() as hold:
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), report_user_errors():
                parse_and_validate_options(str(tmp_path), True,
                                           run_arguments('-opt', str(option_file), '--auto_resume', *extra), hold=hold)
        except SystemExit as exit_:
            return exit_.code, stderr.getvalue()
    return 0, stderr.getvalue()


def _first_mismatch(saved_feat: int, wanted_feat: int) -> tuple[str, tuple, tuple]:
    wanted, saved = (OISR(num_feat=n, num_block=1, upscale=2).state_dict() for n in (wanted_feat, saved_feat))
    name = next(name for name in wanted if wanted[name].shape != saved[name].shape)
    return name, tuple(saved[name].shape), tuple(wanted[name].shape)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_auto_resume_state_whose_network_was_edited(paired_folders, tmp_path, suffix):
    experiment = _trained_run(tmp_path, {4: 64}, suffix)
    status, err = _start_auto_resume(paired_folders, tmp_path, num_feat=32)
    name, saved, wanted = _first_mismatch(64, 32)
    assert (saved, wanted) == ((64, 3, 3, 3), (32, 3, 3, 3))
    assert status == 2
    assert err == (f'error: --auto_resume (training state {experiment / "training_states" / "4.state"}): '
                   f'{experiment / "models" / f"net_g_4{suffix}"} does not fit network_g (OISR): parameter {name} '
                   f'has shape {saved} in the checkpoint and {wanted} in the network.\n')


def test_auto_resume_state_that_fits_starts(paired_folders, tmp_path):
    _trained_run(tmp_path, {2: 32, 4: 32})
    assert _start_auto_resume(paired_folders, tmp_path, num_feat=32) == (0, '')


def test_auto_resume_without_states_is_a_fresh_start(paired_folders, tmp_path):
    assert _start_auto_resume(paired_folders, tmp_path, num_feat=32) == (0, '')  # no experiment folder at all
    (tmp_path / 'experiments' / 'file_checks' / 'training_states').mkdir(parents=True)
    assert _start_auto_resume(paired_folders, tmp_path, num_feat=32) == (0, '')


def test_auto_resume_checks_the_state_load_resume_state_falls_back_to(paired_folders, tmp_path):
    # The newest state is cut short; the older one was saved with another network. The check must name the older
    # one, the state that loading will pick.
    experiment = _trained_run(tmp_path, {2: 64, 4: 32})
    newest = experiment / 'training_states' / '4.state'
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    status, err = _start_auto_resume(paired_folders, tmp_path, num_feat=32)
    assert status == 2
    older = experiment / 'training_states' / '2.state'
    assert err.startswith(f'error: --auto_resume (training state {older}): {experiment / "models" / "net_g_2.pth"} '
                          'does not fit network_g (OISR): parameter ')
    opt = {'auto_resume': True, 'num_gpu': 0, 'is_train': True,
           'path': {'training_states': str(experiment / 'training_states'), 'resume_state': None}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert resume.load_resume_state(opt)['iter'] == 2
    assert opt['path']['resume_state'] == str(older)
    assert any(str(newest) in str(warning.message) for warning in caught)


def test_auto_resume_state_without_its_network(paired_folders, tmp_path):
    experiment = _trained_run(tmp_path, {4: 32})
    (experiment / 'models' / 'net_g_4.pth').unlink()
    status, err = _start_auto_resume(paired_folders, tmp_path, num_feat=32)
    assert (status, err) == (2, f'error: --auto_resume (training state {experiment / "training_states" / "4.state"}): '
                                f'{experiment / "models"} has no net_g_4.pth or net_g_4.safetensors, the network that '
                                'state was saved with.\n')


def test_explicit_resume_state_with_safetensors_weights_is_checked(paired_folders, tmp_path):
    experiment = _trained_run(tmp_path, {4: 16}, '.safetensors')
    opt = _opt(paired_folders)
    opt['path']['resume_state'] = str(experiment / 'training_states' / '4.state')
    with pytest.raises(OptionError, match=f'^path.resume_state: {experiment / "models" / "net_g_4.safetensors"} does '
                                          'not fit network_g'):
        validate_options(opt)


@pytest.mark.slow
def test_auto_resume_mismatch_stops_the_training_command(paired_folders, tmp_path):
    experiment = _trained_run(tmp_path, {4: 64})
    opt = tiny_train_options(*paired_folders, 'file_checks', total_iter=8)
    opt['network_g']['num_feat'] = 32
    result = run_entry_point('oisr_basicsr.train', opt, tmp_path, '--auto_resume')
    assert result.returncode == 2
    assert result.stderr.startswith(f'error: --auto_resume (training state {experiment / "training_states"}')
    assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    assert not list(experiment.glob('train_*.log'))  # stopped before BasicSR made its log, datasets or network
