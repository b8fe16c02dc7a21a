"""The outputs gate: every file a command writes goes through ``oisr_basicsr.outputs``, which never writes onto one
of the run's inputs, never outside the folder the user named, replaces an existing output only where the command's
policy says so, refuses a wrong kind of path before any work, and gives every output umask permissions.

Issue 23 found ``oisr export --weights w.pth --output w.pth`` replacing the trained weights with ONNX bytes (exit 0),
``--output`` equal to the option file overwriting it too, ``oisr prepare-data --name ../../escape`` writing outside
``--output``, wrong kinds of output paths found only after all the work, and ONNX files written 0600. Each case runs
through the real command here; the gate itself is checked against random paths and trees (Hypothesis).
"""

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import assert_one_line_error, smooth_image, tree_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.errors import OutputExistsError, UnsafeOutputError
from oisr_basicsr.outputs import OutputRules, atomic_output, check_output_path, output_in
from oisr_basicsr.tools import compare, convert, export_onnx, infer, plot_scales
from oisr_cli.commands import compare as compare_cli
from oisr_cli.commands import convert as convert_cli
from oisr_cli.commands import export as export_cli
from oisr_cli.commands import infer as infer_cli
from oisr_cli.commands import plot_scales as plot_scales_cli
from oisr_cli.commands import prepare_data as prepare_data_cli

NETWORK = {'type': 'OISR', 'num_feat': 4, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}


def _status(main, argv) -> int:
    try:
        return main(argv) or 0
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture
def run(tmp_path):
    """An option file, its weights, a photo folder and a NODE-SR option file, all in ``tmp_path``."""
    torch.manual_seed(0)
    weights = tmp_path / 'w.pth'
    torch.save({'params': OISR(**{k: v for k, v in NETWORK.items() if k != 'type'}).state_dict()}, weights)
    option_file = tmp_path / 't.yml'
    option_file.write_text(yaml.safe_dump({'name': 't', 'model_type': 'SRModel', 'scale': 2, 'network_g': NETWORK,
                                           'path': {'pretrain_network_g': str(weights)}}))
    node_weights = tmp_path / 'node.pth'
    torch.save({'params': NODEVDSR(num_feat=4, num_layer=2).state_dict()}, node_weights)
    node_file = tmp_path / 'node.yml'
    node_file.write_text(yaml.safe_dump({'name': 'n', 'model_type': 'NODESRModel', 'num_gpu': 0,
                                         'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
                                         'path': {'pretrain_network_g': str(node_weights)}}))
    photos = tmp_path / 'photos'
    photos.mkdir()
    cv2.imwrite(str(photos / 'a.png'), smooth_image(np.random.default_rng(0), 16, 16))
    return tmp_path


# ----------------------------------------------------------------------------------------------------------------
# Never onto an input


@pytest.mark.slow
def test_export_onto_its_own_checkpoint_is_refused_and_leaves_it_unchanged(run):
    """The critical case, through the real ``oisr`` command."""
    before = tree_snapshot(run)
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'export', '-opt', str(run / 't.yml'), '--weights',
                             str(run / 'w.pth'), '--output', str(run / 'w.pth')],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, f'{run / "w.pth"} is the checkpoint; an output never replaces an input')
    assert tree_snapshot(run) == before


@pytest.mark.parametrize('output,message', [
    ('t.yml', 't.yml is the option file'),
    ('sub/../w.pth', 'sub/../w.pth is the checkpoint '),  # the weights named by the option file, reached through ..
    ('hardlink.onnx', 'hardlink.onnx is the checkpoint '),  # the same file under another name
    ('photos/a.png', 'a.png is the parity image'),
], ids=['option-file', 'through-dotdot', 'hard-link', 'parity-image'])
def test_export_refuses_every_input_as_its_output(run, capsys, output, message):
    (run / 'sub').mkdir()
    os.link(run / 'w.pth', run / 'hardlink.onnx')
    before = tree_snapshot(run)
    argv = ['-opt', str(run / 't.yml'), '--output', str(run / output), '--parity-image', str(run / 'photos' / 'a.png')]
    assert _status(export_cli.main, argv) == 2
    assert_one_line_error(capsys.readouterr().err, message)
    assert tree_snapshot(run) == before


@pytest.mark.parametrize('command', ['infer', 'plot-scales', 'compare', 'convert'])
def test_no_command_writes_over_its_inputs(run, capsys, command):
    argv = {
        # infer's output folder is its input folder: a.png would replace the photo it is made from.
        'infer': (infer_cli.main, ['-opt', str(run / 't.yml'), '-i', str(run / 'photos'), '-o', str(run / 'photos')]),
        'plot-scales': (plot_scales_cli.main, ['-opt', str(run / 'node.yml'), '--hr-dir', str(run / 'photos'),
                                           '--output', str(run / 'node.pth')]),
        'compare': (compare_cli.main, ['-opt', str(run / 't.yml'), '--datasets', str(run / 'photos'), '--output-dir',
                                   str(run), '--latency-devices', '--no-progress']),
        'convert': (convert_cli.main, [str(run / 'w.pth'), str(run / 'w.pth'), '--model', 'LF-s', '--scale', '2']),
    }[command]
    if command == 'compare':  # comparison.md is the name of the option file here
        (run / 't.yml').rename(run / 'comparison.md')
        argv[1][1] = str(run / 'comparison.md')
    before = tree_snapshot(run)
    assert _status(*argv) == 2
    message = {'infer': 'a.png is an input image', 'plot-scales': 'node.pth is the checkpoint',
               'compare': 'comparison.md is an option file', 'convert': 'w.pth is the input checkpoint'}[command]
    assert_one_line_error(capsys.readouterr().err, message)
    assert tree_snapshot(run) == before


# ----------------------------------------------------------------------------------------------------------------
# Never outside the folder named


@pytest.mark.parametrize('name', ['../../escape', '/tmp/escape', 'link/escape'], ids=['dotdot', 'absolute', 'link'])
def test_prepare_data_writes_nothing_outside_its_output_folder(tmp_path, capsys, name):
    (tmp_path / 'hr').mkdir()
    cv2.imwrite(str(tmp_path / 'hr' / 'a.png'), smooth_image(np.random.default_rng(0), 48, 48))
    output = tmp_path / 'deep' / 'out'
    output.mkdir(parents=True)
    (tmp_path / 'elsewhere').mkdir()
    (output / 'link').symlink_to(tmp_path / 'elsewhere', target_is_directory=True)
    before = tree_snapshot(tmp_path)
    argv = ['train', '--input', str(tmp_path / 'hr'), '--output', str(output), '--name', name, '--scales', '2',
            '--crop-size', '24', '--step', '24', '--no-lmdb', '--num-workers', '1']
    assert _status(prepare_data_cli.main, argv) == 2
    assert_one_line_error(capsys.readouterr().err, 'outside' if name.startswith('link') else 'does not name a place')
    assert tree_snapshot(tmp_path) == before
    assert not Path('/tmp/escape_HR_sub').exists()


def test_prepare_data_escape_through_the_real_command(tmp_path):
    (tmp_path / 'hr').mkdir()
    cv2.imwrite(str(tmp_path / 'hr' / 'a.png'), smooth_image(np.random.default_rng(0), 48, 48))
    output = tmp_path / 'a' / 'b'
    output.mkdir(parents=True)
    before = tree_snapshot(tmp_path)
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'prepare-data', 'train', '--input', str(tmp_path / 'hr'),
                             '--output', str(output), '--name', '../../escape', '--scales', '2', '--crop-size', '24',
                             '--no-lmdb', '--num-workers', '1'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "'../../escape_HR_sub' does not name a place inside")
    assert tree_snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------------------------
# The wrong kind of path, refused before any work


def _no_work(*_args, **_kwargs):
    raise AssertionError('the work started before the output was checked')


WRONG_KINDS = {
    # A file where a folder is expected ...
    'infer-output-file': (infer, 'build_upsampler', lambda r: (infer_cli.main, [
        '-opt', str(r / 't.yml'), '-i', str(r / 'photos'), '-o', str(r / 'afile')]), 'afile is not a folder'),
    'compare-output-dir-file': (compare, 'compare', lambda r: (compare_cli.main, [
        '-opt', str(r / 't.yml'), '--datasets', str(r / 'photos'), '--output-dir', str(r / 'afile'),
        '--latency-devices']), 'afile is not a folder'),
    'infer-output-below-a-file': (infer, 'build_upsampler', lambda r: (infer_cli.main, [
        '-opt', str(r / 't.yml'), '-i', str(r / 'photos'), '-o', str(r / 'afile' / 'sub')]),
        'cannot be written: {run}/afile is not a folder'),
    # ... and a folder where a file is expected.
    'export-output-folder': (export_onnx, 'plan_export', lambda r: (export_cli.main, [
        '-opt', str(r / 't.yml'), '--output', str(r / 'afolder')]), 'afolder exists and is not a regular file'),
    'plot-scales-output-folder': (plot_scales, 'load_nodesr', lambda r: (plot_scales_cli.main, [
        '-opt', str(r / 'node.yml'), '--hr-dir', str(r / 'photos'), '--output', str(r / 'afolder')]),
        'afolder exists and is not a regular file'),
    'plot-scales-csv-folder': (plot_scales, 'load_nodesr', lambda r: (plot_scales_cli.main, [
        '-opt', str(r / 'node.yml'), '--hr-dir', str(r / 'photos'), '--output', str(r / 'p.png'), '--csv',
        str(r / 'afolder')]), 'afolder exists and is not a regular file'),
    'convert-output-folder': (convert, 'convert_checkpoint', lambda r: (convert_cli.main, [
        str(r / 'w.pth'), str(r / 'afolder'), '--model', 'LF-s', '--scale', '2']),
        'afolder exists and is not a regular file'),
}


@pytest.mark.parametrize('case', WRONG_KINDS)
def test_a_wrong_kind_of_output_path_is_refused_before_any_work(run, capsys, monkeypatch, case):
    module, work, command, message = WRONG_KINDS[case]
    if case != 'convert-output-folder':  # convert checks its outputs before calling the conversion
        monkeypatch.setattr(module, work, _no_work)
    (run / 'afile').write_text('a file')
    (run / 'afolder').mkdir()
    before = tree_snapshot(run)
    assert _status(*command(run)) == 2
    assert_one_line_error(capsys.readouterr().err, message.format(run=run))
    assert tree_snapshot(run) == before


def test_prepare_data_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from oisr_basicsr.data import preparation
    monkeypatch.setattr(preparation, '_list_images', _no_work)
    (tmp_path / 'afile').write_text('a file')
    before = tree_snapshot(tmp_path)
    argv = ['benchmark', '--input', str(tmp_path), '--output', str(tmp_path / 'afile'), '--num-workers', '1']
    assert _status(prepare_data_cli.main, argv) == 2
    assert_one_line_error(capsys.readouterr().err, f'cannot be written: {tmp_path / "afile"} is not a folder')
    assert tree_snapshot(tmp_path) == before


def test_plot_scales_makes_the_folders_its_outputs_go_in(run, capsys, one_thread):
    """The gate makes missing folders above a file output (a plot and a CSV in folders not made yet once ended in a
    traceback after all the work)."""
    plot, table = run / 'new' / 'plots' / 'p.png', run / 'other' / 'p.csv'
    argv = ['-opt', str(run / 'node.yml'), '--hr-dir', str(run / 'photos'), '--scales', '2', '--output', str(plot),
            '--csv', str(table)]
    assert _status(plot_scales_cli.main, argv) == 0
    assert plot.read_bytes().startswith(b'\x89PNG')
    assert table.read_text().splitlines()[0].startswith('scale,')


# ----------------------------------------------------------------------------------------------------------------
# Existing outputs: by each command's policy


def test_convert_replaces_neither_its_output_nor_its_card(run, capsys):
    (run / 'out.pth.card.json').write_text('{"mine": true}')
    before = tree_snapshot(run)
    assert _status(convert_cli.main, [str(run / 'w.pth'), str(run / 'out.pth'), '--model', 'LF-s', '--scale', '2']) == 2
    assert_one_line_error(capsys.readouterr().err, f'{run / "out.pth.card.json"} already exists; remove it or')
    assert tree_snapshot(run) == before


def test_onnx_files_and_their_cards_get_umask_permissions(run, capsys, one_thread):
    (run / 'old.onnx').write_bytes(b'an earlier export')  # replaced, as oisr export documents
    previous = os.umask(0o027)
    try:
        status = _status(export_cli.main, ['-opt', str(run / 't.yml'), '--output', str(run / 'old.onnx'),
                                            '--sample-size', '8', '8'])
    finally:
        os.umask(previous)
    assert status == 0, capsys.readouterr().err
    modes = {name: stat.S_IMODE((run / name).stat().st_mode) for name in ('old.onnx', 'old.onnx.card.json')}
    assert modes == {'old.onnx': 0o640, 'old.onnx.card.json': 0o640}
    assert (run / 'old.onnx').read_bytes() != b'an earlier export'
    assert sorted(path.name for path in run.iterdir() if path.name.startswith('.')) == []  # no temporary file left


# ----------------------------------------------------------------------------------------------------------------
# The gate against random paths and trees

LINKS = ('inlink', 'outlink', 'dangling', 'dangling_out')
SEGMENTS = ['sub', 'file', *LINKS, 'new', '.', '..', '']


def _tree(root: Path) -> Path:
    """``root/out``, the folder the user named: a folder, a file, links inside and out, dangling links."""
    out = root / 'out'
    (out / 'sub').mkdir(parents=True)
    (out / 'file').write_text('f')
    (root / 'elsewhere').mkdir()
    (out / 'inlink').symlink_to(out / 'sub', target_is_directory=True)
    (out / 'outlink').symlink_to(root / 'elsewhere', target_is_directory=True)
    (out / 'dangling').symlink_to(out / 'nowhere')
    (out / 'dangling_out').symlink_to(root / 'nowhere')
    return out


def _leaves_the_folder(name: str) -> bool:
    """An independent model of :func:`output_in`: walk the name through the tree :func:`_tree` makes."""
    if name.startswith('/'):
        return True
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if not parts or '..' in parts:
        return True
    # Only the top level of ``out`` holds links; below ``sub`` (or ``inlink``) nothing exists. A link is refused as
    # the place itself, and as a folder on the way when it leads outside.
    return (len(parts) == 1 and parts[0] in LINKS) or parts[0] in ('outlink', 'dangling_out')


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4), st.booleans())
def test_output_in_never_leads_outside_the_folder(segments, absolute):
    name = ('/' if absolute else '') + '/'.join(segments)
    with tempfile.TemporaryDirectory() as folder:
        out = _tree(Path(folder))
        before = tree_snapshot(Path(folder))
        if _leaves_the_folder(name):
            with pytest.raises(UnsafeOutputError):
                output_in(out, name)
        else:
            target = output_in(out, name)
            assert target.resolve().is_relative_to(out.resolve())
        assert tree_snapshot(Path(folder)) == before


TARGETS = ['absent', 'file', 'folder', 'link to a file', 'dangling link', 'the input', 'the input through ..',
           'a hard link to the input', 'below a file', 'in folders not made yet']


def _target(root: Path, kind: str) -> Path:
    (root / 'input.pth').write_bytes(b'weights')
    (root / 'sub').mkdir()
    (root / 'afile').write_text('a file')
    path = root / 'out.bin'
    if kind == 'file':
        path.write_bytes(b'old output')
    elif kind == 'folder':
        path.mkdir()
    elif kind == 'link to a file':
        path.symlink_to(root / 'afile')
    elif kind == 'dangling link':
        path.symlink_to(root / 'nowhere')
    elif kind == 'the input':
        path = root / 'input.pth'
    elif kind == 'the input through ..':
        path = root / 'sub' / '..' / 'input.pth'
    elif kind == 'a hard link to the input':
        os.link(root / 'input.pth', path)
    elif kind == 'below a file':
        path = root / 'afile' / 'out.bin'
    elif kind == 'in folders not made yet':
        path = root / 'new' / 'deeper' / 'out.bin'
    return path


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TARGETS), st.booleans(), st.sampled_from([0o002, 0o022, 0o027, 0o077]),
       st.binary(max_size=64))
def test_atomic_output_writes_only_where_the_rules_allow(kind, replace, umask, data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = _target(root, kind)
        rules = OutputRules({'the checkpoint': root / 'input.pth'}, replace=replace)
        before = tree_snapshot(root)
        allowed = kind in ('absent', 'in folders not made yet') or (kind == 'file' and replace)
        previous = os.umask(umask)
        try:
            if allowed:
                with atomic_output(path, rules) as file:
                    file.write(data)
            else:
                expected = OutputExistsError if kind == 'file' else UnsafeOutputError
                with pytest.raises(expected):
                    check_output_path(path, rules)
                with pytest.raises(expected), atomic_output(path, rules) as file:
                    file.write(data)
        finally:
            os.umask(previous)
        after = tree_snapshot(root)
        if allowed:
            assert path.read_bytes() == data
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
            made = {path.relative_to(root).as_posix(), *(folder.relative_to(root).as_posix()
                                                         for folder in path.parents if folder.is_relative_to(root))}
            assert {name: content for name, content in after.items() if name not in made} == \
                {name: content for name, content in before.items() if name not in made}
        else:
            assert after == before  # nothing written, no temporary file left, the input unchanged
