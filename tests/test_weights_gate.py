"""The weights gate: one reader for every checkpoint, and only finite floating-point dense tensors with string names
pass it, whichever command loads them.

Issue 23 found int8 and bool weights loading silently everywhere (white images, PSNR 6 dB, exit 0) and sparse
tensors or non-string keys ending in tracebacks. Here each of them goes through every command that loads weights
(infer, export, convert, compare, plot-scales, train's pretrained weights, test, spandrel): one ``error:`` line,
exit status 2, nothing written, the inputs unchanged. The gate itself is checked against random checkpoints
(Hypothesis): every layout, dtype, name and defect it may meet.
"""

import io
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import assert_one_line_error, smooth_image, tiny_train_options, tree_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.checkpoints.io import atomic_save, safetensors_bytes
from oisr_basicsr.checkpoints.weights import WEIGHT_DTYPES, check_weights, integer_tensors, load_weights
from oisr_basicsr.errors import CheckpointError
from oisr_cli.commands import compare as compare_cli
from oisr_cli.commands import convert as convert_cli
from oisr_cli.commands import export as export_cli
from oisr_cli.commands import infer as infer_cli
from oisr_cli.commands import plot_scales as plot_scales_cli
from oisr_cli.commands import test as test_cli
from oisr_cli.commands import train as train_cli

# torch warns that it validates every sparse tensor it unpickles; the sparse ones here are refused anyway.
pytestmark = pytest.mark.filterwarnings('ignore:Validating sparse tensor invariants')

NETWORK = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}
NODE_NETWORK = {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3}


def _status(main, argv) -> int:
    try:
        return main(argv) or 0
    except SystemExit as exit_:
        return exit_.code


# ----------------------------------------------------------------------------------------------------------------
# Every command


def _first(state: dict, kind: str) -> str:
    return next(name for name in state if name.endswith(kind))


def _int8(state: dict) -> tuple[dict, str]:
    name = _first(state, 'weight')
    return {**state, name: state[name].to(torch.int8)}, f'params.{name} is int8; weights must be floating point'


def _bool(state: dict) -> tuple[dict, str]:
    name = _first(state, 'weight')
    return {**state, name: state[name] > 0}, f'params.{name} is bool; weights must be floating point'


def _sparse(state: dict) -> tuple[dict, str]:
    name = _first(state, 'bias')
    return {**state, name: state[name].to_sparse()}, \
        f'params.{name} is a sparse tensor (sparse_coo); weights must be dense'


def _integer_name(state: dict) -> tuple[dict, str]:
    return {**state, 7: torch.zeros(1)}, 'is not a state dict: these names are not strings: 7'


DEFECTS = {'int8': _int8, 'bool': _bool, 'sparse': _sparse, 'integer name': _integer_name}


def _bad_checkpoint(tmp_path: Path, state: dict, defect: str) -> tuple[Path, str]:
    broken, message = DEFECTS[defect](state)
    path = tmp_path / f'{defect.replace(" ", "_")}.pth'
    torch.save({'params': broken}, path)
    return path, f'{path}: {message}' if defect != 'integer name' else f'{path} {message}'


@pytest.fixture
def workdir(tmp_path):
    """An OISR x2 and a NODE-SR network's weights, a photo folder and paired benchmark folders."""
    torch.manual_seed(0)
    net = OISR(**{key: value for key, value in NETWORK.items() if key != 'type'})
    node = NODEVDSR(num_feat=8, num_layer=3)
    rng = np.random.default_rng(0)
    for folder, size in (('photos', 16), ('hr', 32)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'a.png'), smooth_image(rng, size, size))
    lr = tmp_path / 'lr'
    lr.mkdir()
    cv2.imwrite(str(lr / 'a.png'), smooth_image(rng, 16, 16))
    return tmp_path, net.state_dict(), node.state_dict()


def _option_file(tmp_path: Path, weights: Path, nodesr: bool = False) -> str:
    options = {'name': 'gate', 'model_type': 'NODESRModel' if nodesr else 'SRModel', 'scale': 2, 'num_gpu': 0,
               'network_g': NODE_NETWORK if nodesr else NETWORK, 'path': {'pretrain_network_g': str(weights)}}
    if nodesr:
        options.pop('scale')
    path = tmp_path / ('node.yml' if nodesr else 'net.yml')
    path.write_text(yaml.safe_dump(options))
    return str(path)


COMMANDS = {
    'infer': lambda d, w: (infer_cli.main, ['-opt', _option_file(d, w), '-i', str(d / 'photos'), '-o', str(d / 'out'),
                                        '--no-progress']),
    'export': lambda d, w: (export_cli.main, ['-opt', _option_file(d, w), '--output', str(d / 'out.onnx')]),
    'convert': lambda d, w: (convert_cli.main, [str(w), str(d / 'converted.pth'), '--model', 'LF-s', '--scale', '2']),
    'compare': lambda d, w: (compare_cli.main, ['-opt', _option_file(d, w), '--datasets', str(d / 'hr'),
                                            '--output-dir', str(d / 'out'), '--no-progress', '--latency-devices']),
    'plot-scales': lambda d, w: (plot_scales_cli.main, ['-opt', _option_file(d, w, nodesr=True), '--hr-dir',
                                                    str(d / 'hr'), '--output', str(d / 'out.png'), '--scales', '2']),
}


@pytest.mark.parametrize('defect', DEFECTS)
@pytest.mark.parametrize('command', COMMANDS)
def test_weights_that_are_not_floating_point_are_refused_by_the_tools(workdir, capsys, command, defect):
    tmp_path, state, node_state = workdir
    weights, message = _bad_checkpoint(tmp_path, node_state if command == 'plot-scales' else state, defect)
    main, argv = COMMANDS[command](tmp_path, weights)
    before = tree_snapshot(tmp_path)
    assert _status(main, argv) == 2
    assert_one_line_error(capsys.readouterr().err, message)
    assert tree_snapshot(tmp_path) == before  # nothing written, the inputs byte-identical


@pytest.mark.parametrize('defect', DEFECTS)
@pytest.mark.parametrize('entry_point', ['train', 'test'])
def test_pretrained_weights_that_are_not_floating_point_stop_train_and_test(tmp_path, monkeypatch, capsys,
                                                                            paired_folders, entry_point, defect):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    state = OISR(**{key: value for key, value in NETWORK.items() if key != 'type'}).state_dict()
    weights, message = _bad_checkpoint(tmp_path, state, defect)
    options = tiny_train_options(*paired_folders, 'gate', total_iter=2)
    options['path']['pretrain_network_g'] = str(weights)
    if entry_point == 'test':
        options['datasets'] = {'test_1': options['datasets']['val']}
        for key in ('train', 'logger'):
            options.pop(key)
    option_file = tmp_path / f'{entry_point}.yml'
    option_file.write_text(yaml.safe_dump(options))
    before = tree_snapshot(tmp_path)
    main = train_cli.main if entry_point == 'train' else test_cli.main
    assert _status(main, ['-opt', str(option_file)]) == 2
    assert_one_line_error(capsys.readouterr().err, f'error: path.pretrain_network_g: {message}')
    assert tree_snapshot(tmp_path) == before  # no experiments/ or results/ folder


def test_int8_weights_through_the_oisr_command(workdir):
    """The real command in its own process: one error line, exit status 2, nothing written."""
    tmp_path, state, _ = workdir
    weights, message = _bad_checkpoint(tmp_path, state, 'int8')
    argv = ['-opt', _option_file(tmp_path, weights), '-i', str(tmp_path / 'photos'), '-o', str(tmp_path / 'out')]
    before = tree_snapshot(tmp_path)
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'infer', *argv], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, message)
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize('defect', ['int8', 'bool', 'sparse'])
def test_spandrel_refuses_weights_that_are_not_floating_point(tmp_path, defect):
    spandrel = pytest.importorskip('spandrel')
    torch.manual_seed(0)
    state = OISR(**{key: value for key, value in NETWORK.items() if key != 'type'}).state_dict()
    broken, message = DEFECTS[defect](state)
    # spandrel passes the state dict, not the file, and its own unpickler already refuses a sparse tensor in one.
    loader = spandrel.ModelLoader()
    torch.save({'params': broken}, tmp_path / 'weights.pth')
    with pytest.raises(CheckpointError) as error:
        if defect == 'sparse':
            loader.load_from_state_dict({'params': broken})
        else:
            loader.load_from_file(tmp_path / 'weights.pth')
    assert str(error.value).startswith('the state dict given to spandrel: ' + message.removeprefix('params.'))


def test_integer_tensors_pass_only_where_the_network_holds_them(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    path = tmp_path / 'bn.pth'
    torch.save({'params': net.state_dict()}, path)
    assert integer_tensors(net) == {'1.num_batches_tracked'}
    loaded = load_weights(path, network=net)
    assert loaded['1.num_batches_tracked'].dtype == torch.int64
    with pytest.raises(CheckpointError, match=r'bn\.pth: params\.1\.num_batches_tracked is int64; weights must be'):
        load_weights(path)
    state = {**net.state_dict(), '0.weight': net.state_dict()['0.weight'].to(torch.int64)}
    with pytest.raises(CheckpointError, match=r'^x: 0\.weight is int64; weights must be floating point'):
        check_weights(state, 'x', integer_names=integer_tensors(net))


# ----------------------------------------------------------------------------------------------------------------
# The gate against random checkpoints

BAD_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64,
              torch.float8_e5m2)
NAMES = st.from_regex(r'[a-z][a-z0-9_]{0,5}(\.[a-z0-9_]{1,5}){0,2}', fullmatch=True)
# Where the state dict sits in the file, as (path of entries); the entries are asked for with param_key 'params'.
LAYOUTS = {'bare': (), 'params': ('params', ), 'params_ema only': ('params_ema', ), 'state_dict': ('state_dict', ),
           'model': ('model', ), 'params under model': ('model', 'params')}


def _tensor(draw, dtype: torch.dtype) -> torch.Tensor:
    shape = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    values = draw(st.lists(st.floats(-2, 2, allow_nan=False, width=16), min_size=math.prod(shape),
                           max_size=math.prod(shape)))
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


@st.composite
def checkpoints(draw):
    """``(checkpoint, expected state dict, or the text the error must hold, fmt)``."""
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    state = {name: _tensor(draw, draw(st.sampled_from(WEIGHT_DTYPES))) for name in names}
    layout = draw(st.sampled_from(list(LAYOUTS)))
    data_parallel = draw(st.booleans())
    defect = draw(st.sampled_from([None, 'dtype', 'sparse', 'non-finite', 'name', 'value']))
    victim = draw(st.sampled_from(names))
    location = ''.join(f'{entry}.' for entry in LAYOUTS[layout])
    prefix = 'module.' if data_parallel else ''
    stored = dict(state)
    if defect == 'dtype':
        dtype = draw(st.sampled_from(BAD_DTYPES))
        stored[victim] = stored[victim].to(dtype)
        expected = f': {location}{victim} is {str(dtype).removeprefix("torch.")}; weights must be floating point'
    elif defect == 'sparse':
        stored[victim] = stored[victim].to_sparse() if stored[victim].dim() else stored[victim][None].to_sparse()
        expected = f': {location}{victim} is a sparse tensor (sparse_coo); weights must be dense'
    elif defect == 'non-finite':
        stored[victim] = torch.full_like(stored[victim], draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        expected = f' was not loaded: {location}{prefix}{victim} holds {stored[victim].numel()} non-finite value(s)'
    elif defect == 'name':
        stored[3] = torch.zeros(1)
        expected = ' is not a state dict: these names are not strings: 3'
    elif defect == 'value':
        stored[victim] = 2.0
        expected = f' is not a state dict: these entries are not tensors: {prefix}{victim} (float)'
    else:
        expected = state
    checkpoint = {f'{prefix}{name}' if isinstance(name, str) else name: value for name, value in stored.items()}
    for entry in reversed(LAYOUTS[layout]):
        checkpoint = {entry: checkpoint}
    # safetensors holds named dense tensors in one level of dicts, and no float8 / complex here.
    storable = defect in (None, 'non-finite') and len(LAYOUTS[layout]) <= 1
    fmt = draw(st.sampled_from(['.pth', '.safetensors'] if storable else ['.pth']))
    return checkpoint, expected, fmt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoints())
def test_the_gate_passes_exactly_the_finite_floating_point_weights(case):
    checkpoint, expected, fmt = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f'w{fmt}'
        if fmt == '.pth':
            torch.save(checkpoint, path)
        else:
            path.write_bytes(safetensors_bytes(checkpoint))
        before = path.read_bytes()
        if isinstance(expected, str):
            with pytest.raises(CheckpointError) as error:
                load_weights(path)
            assert str(error.value).startswith(f'{path}{expected}'), (str(error.value), expected)
        else:
            loaded = load_weights(path)
            assert loaded.keys() == expected.keys()
            assert all(loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
                       for name, tensor in expected.items())
        assert path.read_bytes() == before


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(['.pth', '.safetensors', '.pt']))
def test_any_other_bytes_are_refused_naming_the_file(content, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f'w{suffix}'
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=rf'^(cannot read )?{re.escape(str(path))}'):
            load_weights(path)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_a_truncated_checkpoint_is_refused_naming_the_file(cut):
    buffer = io.BytesIO()
    torch.save({'params': {'w': torch.ones(64, 64)}}, buffer)
    content = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / 'w.pth'
        path.write_bytes(content[:cut % len(content)])
        with pytest.raises(CheckpointError, match=rf'^(cannot read )?{re.escape(str(path))}'):
            load_weights(path)


def test_layout_rules(tmp_path):
    """BasicSR's fallback to another entry, a bare state dict for param_key None, ``module.`` twice."""
    w = torch.ones(1)
    atomic_save({'params': {'a': w}, 'params_ema': {'a': 2 * w}}, tmp_path / 'ema.pth')
    assert load_weights(tmp_path / 'ema.pth', 'params_ema')['a'] == 2
    assert load_weights(tmp_path / 'ema.pth', 'missing')['a'] == 1  # BasicSR falls back to params
    atomic_save({'params_ema': {'a': 2 * w}}, tmp_path / 'only_ema.pth')
    assert load_weights(tmp_path / 'only_ema.pth')['a'] == 2
    with pytest.raises(CheckpointError, match=r'expected a bare state dict, as param_key None asks'):
        load_weights(tmp_path / 'ema.pth', None)
    atomic_save({'module.a': w, 'a': w}, tmp_path / 'twice.pth')
    with pytest.raises(CheckpointError, match=r"twice\.pth: a is there twice, with and without DataParallel's"):
        load_weights(tmp_path / 'twice.pth')
    with pytest.raises(CheckpointError, match=r'missing\.pth does not exist or is not a file'):
        load_weights(tmp_path / 'missing.pth')
