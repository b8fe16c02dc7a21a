"""``oisr check``: the start-up checks of a run without the run. A good file gives a summary and exit status 0, each
kind of bad file the run's own ``error:`` line and exit status 2, and nothing is ever created."""

import contextlib
import io
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import run_arguments, tiny_train_options

from oisr_basicsr import memory
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.options import report_user_errors
from oisr_basicsr.run_lock import RunLock
from oisr_basicsr.startup import parse_and_validate_options
from oisr_cli.commands import check

NAME = 'checked_x2'


def _files(root) -> set:
    """Every path under ``root``, to see that a check created nothing."""
    return {path.relative_to(root) for path in root.rglob('*')}


def _write(tmp_path, options: dict):
    option_file = tmp_path / 'train.yml'
    option_file.write_text(yaml.safe_dump(options))
    return option_file


def _check(tmp_path, option_file, *extra: str) -> tuple[int, str, str]:
    """``oisr check`` in this process, in ``tmp_path``: its exit status, stdout and stderr; asserts it created
    nothing."""
    before = _files(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = check.main(['-opt', str(option_file), *extra])
        except SystemExit as exit_:
            status = exit_.code
    assert _files(tmp_path) == before
    return status, out.getvalue(), err.getvalue()


def _run_start(tmp_path, option_file) -> tuple[int, str]:
    """What ``oisr train`` prints when its start-up refuses the file, and its exit status."""
    err = io.StringIO()
    with contextlib.ExitStack() as hold:
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), report_user_errors():
                parse_and_validate_options(str(tmp_path), True, run_arguments('-opt', str(option_file)), hold=hold)
        except SystemExit as exit_:
            return exit_.code, err.getvalue()
    return 0, err.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_good_file_is_summarised_and_nothing_is_created(workdir, paired_folders):
    hr_dir, lr_dir = paired_folders
    option_file = _write(workdir, tiny_train_options(hr_dir, lr_dir, NAME, total_iter=2))
    status, out, err = _check(workdir, option_file)
    assert (status, err) == (0, '')
    params = sum(p.numel() for p in OISR(num_feat=8, num_block=1, upscale=2, scheme='lf', g_variant='v2').parameters())
    lines = out.splitlines()
    assert lines[0].startswith(f'model: SRModel; network_g: OISR x2, {params:,} parameters, ')
    assert lines[0].endswith(' G MACs for a 1280x720 output')
    assert lines[1:3] == ['datasets.train: PairedImageDataset, GT 4 images, 64x64; LQ 4 images, 32x32',
                          'datasets.val: PairedImageDataset, GT 4 images, 64x64; LQ 4 images, 32x32']
    # The largest validation result, 64x64 RGB: at least its float32 values and 8-bit copy in memory.
    assert lines[3].startswith(f'  largest result: {lr_dir / "img0.png"}, 64x64, needs about ')
    assert lines[4:] == [f'experiments/{NAME}: free (no other run holds it)',
                         f'ok: {option_file} is ready for oisr train; nothing was created']


def test_a_runs_start_checks_the_schema_once(workdir, paired_folders, monkeypatch):
    """One validator, run once: the start reads the option file, checks it against the schema and then only checks
    what the typed options name (files, sizes, memory)."""
    from oisr_basicsr.options.schema import root
    from oisr_basicsr.startup import checks, command_line
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0]['name'])
        return root.check_option_schema(*args, **kwargs)

    for module in (command_line, checks):
        monkeypatch.setattr(module, 'check_option_schema', counted)
    hr_dir, lr_dir = paired_folders
    status, _, err = _check(workdir, _write(workdir, tiny_train_options(hr_dir, lr_dir, NAME, total_iter=2)))
    assert (status, err, calls) == (0, '', [NAME])


def test_macs_are_those_of_oisr_complexity(workdir, paired_folders, capsys):
    from oisr_cli.commands import complexity

    option_file = _write(workdir, tiny_train_options(*paired_folders, NAME, total_iter=2))
    status, out, _ = _check(workdir, option_file)
    assert status == 0
    assert complexity.main(['-opt', str(option_file)]) == 0
    macs = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('MACs: '))
    assert f', {macs.split()[1]} G MACs for a 1280x720 output' in out.splitlines()[0]


def _unknown_key(options, tmp_path):
    options['network_g']['num_blocks'] = 3


def _missing_folder(options, tmp_path):
    options['datasets']['val']['dataroot_gt'] = str(tmp_path / 'nowhere')


def _unpaired(options, tmp_path):
    lr_dir = options['datasets']['train']['dataroot_lq']
    os.rename(os.path.join(lr_dir, 'img3.png'), os.path.join(lr_dir, 'img3_x2.png'))


def _weights_that_do_not_fit(options, tmp_path):
    weights = tmp_path / 'net_g.pth'
    torch.save({'params': OISR(num_feat=16, num_block=1, upscale=2).state_dict()}, weights)
    options['path']['pretrain_network_g'] = str(weights)


@pytest.mark.parametrize('break_file, message', [
    (_unknown_key, 'error: network_g.num_blocks: unknown key; did you mean num_block?'),
    (_missing_folder, 'error: datasets.val.dataroot_gt: folder {tmp}/nowhere does not exist.'),
    (_unpaired, 'error: datasets.train.dataroot_lq: {tmp}/data/LRx2 has no img3.png, the LQ image of '
                "{tmp}/data/HR/img3.png (filename_tmpl: '{{}}')."),
    (_weights_that_do_not_fit, 'error: path.pretrain_network_g: {tmp}/net_g.pth does not fit network_g (OISR): '
                               'parameter conv_first.weight has shape (16, 3, 3, 3) in the checkpoint and (8, 3, 3, 3) '
                               'in the network.'),
], ids=['schema', 'missing-file', 'dataset-pair', 'weights-fit'])
def test_bad_file_gives_the_runs_error_line(workdir, paired_folders, break_file, message):
    options = tiny_train_options(*paired_folders, NAME, total_iter=2)
    break_file(options, workdir)
    option_file = _write(workdir, options)
    status, out, err = _check(workdir, option_file)
    assert (status, out) == (2, '')
    assert err == message.format(tmp=workdir) + '\n'
    assert _run_start(workdir, option_file) == (2, err)  # the run's own start-up prints the same line


def test_result_that_cannot_fit_in_memory(workdir, paired_folders, monkeypatch):
    monkeypatch.setattr(memory, 'available_memory', lambda device: 1000)
    option_file = _write(workdir, tiny_train_options(*paired_folders, NAME, total_iter=2))
    status, out, err = _check(workdir, option_file)
    assert (status, out) == (2, '')
    assert err.startswith(f'error: datasets.val: {paired_folders[1] / "img0.png"}: at scale 2 the result is 64x64 '
                          'pixels, ')
    assert err.endswith(', more than the 1000 bytes available; test on smaller images or on a device with more '
                        'memory\n')
    assert _run_start(workdir, option_file) == (2, err)


def test_folder_locked_by_another_run(workdir, paired_folders):
    option_file = _write(workdir, tiny_train_options(*paired_folders, NAME, total_iter=2))
    with RunLock(workdir / 'experiments' / NAME):
        status, out, err = _check(workdir, option_file)
        assert (status, out) == (2, '')
        assert err == (f'error: {workdir / "experiments" / NAME} is in use by another run (PID {os.getpid()} on host '
                       f'{os.uname().nodename}); nothing was changed. Wait for that run to end (or stop it) before '
                       'starting or resuming this one, or choose another name.\n')
    # Released: the lock file the other run left behind is no obstacle, and stays as it was.
    assert _check(workdir, option_file)[0] == 0


def test_test_file_is_checked_as_oisr_test(workdir, paired_folders):
    options = tiny_train_options(*paired_folders, NAME, total_iter=2)
    test_options = {key: options[key] for key in ('model_type', 'scale', 'num_gpu', 'network_g', 'path', 'val')}
    test_options.update(name=f'{NAME}_test', datasets={'test_1': {**options['datasets']['val'], 'name': 'tiny'}})
    del test_options['val']['val_freq']
    option_file = _write(workdir, test_options)
    status, out, _ = _check(workdir, option_file)
    assert status == 0
    assert out.splitlines()[-2:] == [f'results/{NAME}_test: free (no other run holds it)',
                                     f'ok: {option_file} is ready for oisr test; nothing was created']


def test_command_line_check(tmp_path, paired_folders):
    option_file = _write(tmp_path, tiny_train_options(*paired_folders, NAME, total_iter=2))
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'check', '-opt', str(option_file), '--force_yml',
                             'network_g:num_feat=16'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f'ok: {option_file} is ready for oisr train; nothing was created'
    params = sum(p.numel() for p in OISR(num_feat=16, num_block=1, upscale=2, scheme='lf', g_variant='v2').parameters())
    assert f'network_g: OISR x2, {params:,} parameters' in result.stdout  # the forced value was checked
    assert _files(tmp_path) == before


def test_any_scale_and_parameter_free_networks_are_summarised(workdir, paired_folders):
    from torch import nn

    from oisr_basicsr.complexity import meta_network
    from oisr_basicsr.models.nodesr import NODESR

    hr_dir, lr_dir = paired_folders
    network = {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3}
    node_options = {
        'name': 'node_check', 'model_type': 'NODESRModel', 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(hr_dir),
                                'io_backend': {'type': 'disk'}, 'test_scale': 2.5}},
        'network_g': network, 'ode': {'solver': 'rk4', 'num_steps': 2},
        'path': {'pretrain_network_g': None},
        'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
    }
    status, out, _ = _check(workdir, _write(workdir, node_options))
    assert status == 0
    net = meta_network(network)
    # One solve from t = 2 to 1: the solver's evaluations, each the convolutions' weights times the output pixels.
    evaluations = NODESR.from_options(net, node_options, 2).network_evaluations()
    macs = evaluations * sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)) * 1280 * 720
    params = sum(p.numel() for p in net.parameters())
    assert out.splitlines()[0] == (f'model: NODESRModel; network_g: NODEVDSR (any scale), {params:,} parameters, '
                                   f'{macs / 1e9:.1f} G MACs per x2 solve for a 1280x720 output')
    bicubic_options = tiny_train_options(hr_dir, lr_dir, NAME, total_iter=2)
    bicubic_options['network_g'] = {'type': 'Bicubic', 'upscale': 2}
    status, out, _ = _check(workdir, _write(workdir, bicubic_options))
    assert (status, out.splitlines()[0]) == (0, 'model: SRModel; network_g: Bicubic x2, no parameters')
