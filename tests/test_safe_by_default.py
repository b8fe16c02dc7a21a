"""Safe by default: option files never run code, names stay inside experiments/, nothing is written through a
link, outputs get umask permissions, non-finite weights are refused, BasicSR's debug mode is announced."""

import os
import re
import stat
import subprocess
import sys
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import run_arguments, run_entry_point, smooth_image, tiny_train_options

import oisr_basicsr  # noqa: F401  (BasicSR needs the import shims before its first import)

# isort: split
import basicsr.models.sr_model

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.checkpoints.io import NonFiniteWeightsError, atomic_save
from oisr_basicsr.options import OptionError, apply_forced_option, debug_mode_notice, parse_options, read_option_file
from oisr_basicsr.outputs import UnsafeOutputError
from oisr_basicsr.safeguards import resume
from oisr_cli.commands import compare, complexity, convert, infer, plot_scales, test, train
from oisr_cli.commands import export as export_onnx

NETWORK = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}
TAG = '!!python/object/apply:os.system'


def _exit_status(main, argv) -> int:
    """The exit status of an entry point's ``main``: its return value, or that of the SystemExit it raises."""
    try:
        return main(argv) or 0
    except SystemExit as exit_:
        return exit_.code


def _assert_one_line_error(stderr: str, *parts: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), stderr
    assert 'Traceback' not in stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    net = OISR(**{k: v for k, v in NETWORK.items() if k != 'type'})
    path = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), smooth_image(np.random.default_rng(0), 12, 14))
    return folder


# ----------------------------------------------------------------------------------------------------------------
# 1. Option files execute code


def _payload_file(tmp_path, marker) -> 'os.PathLike':
    """An option file whose second line would run ``touch marker`` under PyYAML's full loader."""
    path = tmp_path / 'payload.yml'
    path.write_text(f'name: payload\nx: {TAG} ["touch {marker}"]\nmodel_type: SRModel\nscale: 2\n'
                    + yaml.safe_dump({'network_g': NETWORK, 'datasets': {}, 'path': {}}))
    return path


ENTRY_POINTS = {
    'oisr_basicsr.train': lambda tmp_path, opt: (train.main, ['-opt', opt]),
    'oisr_basicsr.test': lambda tmp_path, opt: (test.main, ['-opt', opt]),
    'oisr_basicsr.infer': lambda tmp_path, opt: (infer.main, ['-opt', opt, '-i', str(tmp_path / 'photos'), '-o',
                                                              str(tmp_path / 'out')]),
    'export_onnx': lambda tmp_path, opt: (export_onnx.main, ['-opt', opt, '--output',
                                                                            str(tmp_path / 'x.onnx')]),
    'model_complexity': lambda tmp_path, opt: (complexity.main, ['-opt', opt]),
    'compare_models': lambda tmp_path, opt: (compare.main, [
        '-opt', opt, '--datasets', str(tmp_path / 'photos'), '--output-dir', str(tmp_path / 'cmp')]),
    'plot_psnr_vs_scale': lambda tmp_path, opt: (plot_scales.main, [
        '-opt', opt, '--hr-dir', str(tmp_path / 'photos')]),
}


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_yaml_payload_runs_nowhere(tmp_path, monkeypatch, capsys, image_folder, entry_point):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / 'PWNED'
    option_file = _payload_file(tmp_path, marker)
    main, argv = ENTRY_POINTS[entry_point](tmp_path, str(option_file))
    assert _exit_status(main, argv) == 2
    assert not marker.exists()
    _assert_one_line_error(capsys.readouterr().err, f'{option_file}, line 2: the tag {TAG} is refused')
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'results').exists()


@pytest.mark.slow
def test_yaml_payload_through_the_command_line(tmp_path):
    marker = tmp_path / 'PWNED'
    option_file = _payload_file(tmp_path, marker)
    for command in ([sys.executable, '-m', 'oisr_basicsr.train', '-opt', str(option_file)],
                    [sys.executable, '-m', 'oisr_cli', 'complexity', '-opt', str(option_file)]):
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        _assert_one_line_error(result.stderr, f'{option_file}, line 2: the tag {TAG} is refused')
    assert not marker.exists()


def test_plain_data_still_reads_as_basicsr_reads_it(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text('name: x\ntrain:\n  lr: !!float 2e-4\n  milestones: [250000, 500000]\n'
                    'base: &base {a: 1}\nderived:\n  <<: *base\n  b: ~\nflag: true\n')
    opt = read_option_file(path)
    assert isinstance(opt, OrderedDict) and list(opt) == ['name', 'train', 'base', 'derived', 'flag']
    assert opt['train'] == {'lr': 2e-4, 'milestones': [250000, 500000]} and isinstance(opt['train']['lr'], float)
    assert opt['derived'] == {'a': 1, 'b': None} and opt['flag'] is True
    (tmp_path / 'list.yml').write_text('- a\n')
    with pytest.raises(OptionError, match='list.yml holds no mapping of options'):
        read_option_file(tmp_path / 'list.yml')
    (tmp_path / 'bad.yml').write_text('a: [1\nb: 2\n')
    with pytest.raises(OptionError, match=r'bad.yml is not valid YAML \(line \d+\): '):
        read_option_file(tmp_path / 'bad.yml')


@pytest.mark.parametrize('tag', ['!!python/name:os.system', '!!python/object/new:os.system', '!custom'])
def test_every_non_standard_tag_is_refused(tmp_path, tag):
    path = tmp_path / 'o.yml'
    path.write_text(f'a:\n  b:\n    - 1\n    - {tag} x\n')
    with pytest.raises(OptionError, match=f'o.yml, line 4: the tag {re.escape(tag)} is refused'):
        read_option_file(path)


# ----------------------------------------------------------------------------------------------------------------
# 2. --force_yml is passed to exec


def test_force_yml_is_data_not_code(tmp_path, monkeypatch, capsys, paired_folders):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / 'PWNED'
    options = tiny_train_options(*paired_folders, 'forced', total_iter=2)
    options['datasets']['train']['dataroot_gt'] = str(tmp_path / 'missing')  # stop at validation, after parsing
    option_file = tmp_path / 'o.yml'
    option_file.write_text(yaml.safe_dump(options))
    injection = f'name"];__import__("os").system("touch {marker}");opt["name=x'
    assert _exit_status(train.main, ['-opt', str(option_file), '--force_yml', injection]) == 2
    assert not marker.exists()
    _assert_one_line_error(capsys.readouterr().err)  # the options are checked after --force_yml, and fail

    payload = f'x={TAG} ["touch {marker}"]'
    assert _exit_status(train.main, ['-opt', str(option_file), '--force_yml', payload]) == 2
    assert not marker.exists()
    _assert_one_line_error(capsys.readouterr().err, f"--force_yml '{payload}', line 1: the tag {TAG} is refused")


def test_force_yml_values_are_yaml(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, 'forced', total_iter=2)
    option_file = tmp_path / 'o.yml'
    option_file.write_text(yaml.safe_dump(options))
    opt, _ = parse_options(str(tmp_path), True, run_arguments(
        '-opt', str(option_file), '--force_yml', 'datasets:train:batch_size_per_gpu=4', 'train:ema_decay=0.999',
        'train:optim_g:lr=!!float 2e-4', 'train:scheduler:milestones=[1, 2]', 'path:pretrain_network_g=none',
        'val:save_img=true', 'name=forced=2'))
    assert opt['datasets']['train']['batch_size_per_gpu'] == 4
    assert opt['train']['ema_decay'] == 0.999 and opt['train']['optim_g']['lr'] == 2e-4
    assert opt['train']['scheduler']['milestones'] == [1, 2]
    assert opt['path']['pretrain_network_g'] is None and opt['val']['save_img'] is True
    assert opt['name'] == 'forced=2' and opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'forced=2')
    with pytest.raises(OptionError, match="--force_yml 'nowhere:x=1': nowhere is not a mapping of the option file"):
        apply_forced_option(opt, 'nowhere:x=1')
    with pytest.raises(OptionError, match="--force_yml 'name': expected key:subkey=value"):
        apply_forced_option(opt, 'name')


# ----------------------------------------------------------------------------------------------------------------
# 5, 9. Writes through links; checkpoints with mode 0600


def test_infer_does_not_write_through_a_link(tmp_path, weights, image_folder, capsys):
    option_file = tmp_path / 'o.yml'
    option_file.write_text(yaml.safe_dump({'name': 't', 'model_type': 'SRModel', 'scale': 2, 'network_g': NETWORK,
                                           'path': {'pretrain_network_g': str(weights)}}))
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    outs = tmp_path / 'outs'
    outs.mkdir()
    (outs / 'a.png').symlink_to(victim)
    status = infer.main(['-opt', str(option_file), '-i', str(image_folder), '-o', str(outs), '--no-progress'])
    assert status == 2
    assert victim.read_text() == 'precious' and (outs / 'a.png').is_symlink()
    _assert_one_line_error(capsys.readouterr().err, f'{outs / "a.png"} is a symbolic link; refusing to write')

    (outs / 'a.png').unlink()
    (outs / 'a.png').mkdir()  # not a regular file either
    assert infer.main(['-opt', str(option_file), '-i', str(image_folder), '-o', str(outs), '--no-progress']) == 2
    _assert_one_line_error(capsys.readouterr().err, 'exists and is not a regular file')


@pytest.mark.usefixtures('basicsr_safeguards')  # BasicSR's imwrite replaced, as the entry points do
def test_validation_images_and_checkpoints_do_not_write_through_links(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    image, checkpoint = tmp_path / 'img_1.png', tmp_path / 'net_g_latest.pth'
    image.symlink_to(victim)
    checkpoint.symlink_to(victim)
    with pytest.raises(UnsafeOutputError, match='img_1.png is a symbolic link'):
        basicsr.models.sr_model.imwrite(np.zeros((4, 4, 3), np.uint8), str(image))  # what SRModel's save_img calls
    with pytest.raises(UnsafeOutputError, match='net_g_latest.pth is a symbolic link'):
        atomic_save({'params': {}}, checkpoint)
    assert victim.read_text() == 'precious'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['img_1.png', 'net_g_latest.pth', 'victim.txt']


@pytest.mark.usefixtures('basicsr_safeguards')
def test_outputs_have_umask_permissions(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_save({'params': {'w': torch.ones(1)}}, tmp_path / 'net_g_1.pth')
        basicsr.models.sr_model.imwrite(np.zeros((4, 4, 3), np.uint8), str(tmp_path / 'sub' / 'img.png'))
        (tmp_path / 'plain.txt').write_text('reference')
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*tmp_path.iterdir(), tmp_path / 'sub' / 'img.png']}
    assert modes['net_g_1.pth'] == modes['img.png'] == modes['plain.txt'] == 0o640


@pytest.mark.slow
def test_training_writes_checkpoints_states_and_option_copy_with_umask_permissions(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, 'umask', total_iter=2)
    options['logger']['use_tb_logger'] = False
    option_file = tmp_path / 'umask.yml'
    option_file.write_text(yaml.safe_dump(options))
    result = subprocess.run(f'umask 022 && exec {sys.executable} -m oisr_basicsr.train -opt {option_file}',
                            shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'umask'
    files = [*experiment.glob('models/*.pth'), *experiment.glob('training_states/*.state'), experiment / 'umask.yml']
    assert len(files) == 4  # net_g_2.pth, net_g_latest.pth, 2.state and the copy of the option file
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
    assert (experiment / 'umask.yml').read_text().endswith(option_file.read_text())


# ----------------------------------------------------------------------------------------------------------------
# 6. ``name`` leaves experiments/


@pytest.mark.parametrize('name', ['/ABSOLUTE', '../../x', 'a/b', '.', '..', 'bad\nname', ''])
def test_name_must_be_a_plain_folder_name(tmp_path, monkeypatch, capsys, paired_folders, name):
    workdir = tmp_path / 'work' / 'here'
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    outside = tmp_path / 'x'
    outside.mkdir()
    options = tiny_train_options(*paired_folders, str(outside) if name == '/ABSOLUTE' else name, total_iter=2)
    option_file = tmp_path / 'o.yml'
    option_file.write_text(yaml.safe_dump(options))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert _exit_status(train.main, ['-opt', str(option_file)]) == 2
    err = capsys.readouterr().err
    _assert_one_line_error(err, 'error: name: ')
    assert 'plain folder name' in err or 'at least 1 character' in err  # the schema refuses an empty string
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing renamed or written outside
    assert list(workdir.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# 7. Non-finite weights are used silently


@pytest.fixture
def nan_weights(tmp_path, weights):
    checkpoint = torch.load(weights)
    checkpoint['params']['body.blocks.0.scale2'].fill_(float('nan'))
    checkpoint['params']['conv_last.weight'].fill_(float('inf'))
    path = tmp_path / 'nan.pth'
    torch.save(checkpoint, path)
    return path, 'params.body.blocks.0.scale2'


def _network_option_file(tmp_path, weights) -> str:
    path = tmp_path / 'net.yml'
    path.write_text(yaml.safe_dump({'name': 'nan', 'model_type': 'SRModel', 'scale': 2, 'network_g': NETWORK,
                                    'path': {'pretrain_network_g': str(weights)}}))
    return str(path)


LOADERS = {
    'infer': lambda tmp_path, opt, _w: (infer.main, ['-opt', opt, '-i', str(tmp_path / 'photos'), '-o',
                                                     str(tmp_path / 'out'), '--no-progress']),
    'export': lambda tmp_path, opt, _w: (export_onnx.main, ['-opt', opt, '--output',
                                                                           str(tmp_path / 'x.onnx')]),
    'compare': lambda tmp_path, opt, _w: (compare.main, [
        '-opt', opt, '--datasets', str(tmp_path / 'photos'), '--output-dir', str(tmp_path / 'cmp'), '--no-progress']),
    'convert': lambda tmp_path, _opt, w: (convert.main, [
        str(w), str(tmp_path / 'converted.pth'), '--model', 'LF-s', '--scale', '2']),
}


@pytest.mark.parametrize('loader', LOADERS)
def test_non_finite_weights_are_refused_by_the_tools(tmp_path, capsys, nan_weights, image_folder, loader):
    path, first_bad = nan_weights
    main, argv = LOADERS[loader](tmp_path, _network_option_file(tmp_path, path), path)
    assert _exit_status(main, argv) == 2
    _assert_one_line_error(capsys.readouterr().err, f'{path} was not loaded: {first_bad} holds',
                           'non-finite value(s) (NaN or inf)')
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'converted.pth').exists()


def test_non_finite_weights_are_refused_by_test_and_resume(tmp_path, monkeypatch, capsys, nan_weights,
                                                           paired_folders):
    monkeypatch.chdir(tmp_path)
    path, first_bad = nan_weights
    hr_dir, lr_dir = paired_folders
    options = {'name': 'nan_test', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'network_g': NETWORK,
               'datasets': {'test_1': {'name': 't', 'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir),
                                       'dataroot_lq': str(lr_dir), 'io_backend': {'type': 'disk'}}},
               'path': {'pretrain_network_g': str(path), 'strict_load_g': True},
               'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}}}
    option_file = tmp_path / 'test.yml'
    option_file.write_text(yaml.safe_dump(options))
    assert _exit_status(test.main, ['-opt', str(option_file)]) == 2
    _assert_one_line_error(capsys.readouterr().err, f'{path} was not loaded: {first_bad} holds')

    states = tmp_path / 'states'
    states.mkdir()
    torch.save({'iter': 2, 'epoch': 0, 'optimizers': [{'state': {0: {'exp_avg': torch.tensor([float('nan')])}}}]},
               states / '2.state')
    opt = {'auto_resume': True, 'num_gpu': 0, 'path': {'training_states': str(states)}}
    with pytest.raises(NonFiniteWeightsError, match=r'2.state was not loaded: optimizers.0.state.0.exp_avg holds'):
        resume.load_resume_state(opt)


# ----------------------------------------------------------------------------------------------------------------
# 8. A name that contains "debug" silently switches BasicSR's debug mode


def test_debug_mode_is_announced_on_the_console_and_first_in_the_log(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, 'oisr_nodebug_x2', total_iter=1)
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    notice = ("BasicSR's debug mode is on because the name 'oisr_nodebug_x2' contains 'debug': validation and "
              'checkpoints every 8 iterations')
    assert notice in result.stderr
    log = next((tmp_path / 'experiments' / 'oisr_nodebug_x2').glob('train_*.log')).read_text()
    assert notice in log.splitlines()[0]


def test_debug_notice_only_for_training():
    assert debug_mode_notice({'is_train': False, 'name': 'debug_x'}) is None
    assert debug_mode_notice({'is_train': True, 'name': 'x'}) is None
    assert "the name 'x_debug' contains 'debug'" in debug_mode_notice({'is_train': True, 'name': 'x_debug'})
