"""scripts/export_onnx.py: the ONNX graph has dynamic batch, height and width and matches PyTorch."""

import numpy as np
import pytest
import torch
import yaml
from conftest import load_script

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.utils.loading import build_network_from_options, load_option_file

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxscript')
onnxruntime = pytest.importorskip('onnxruntime')

NETWORK = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 3, 'scheme': 'rk3', 'g_variant': 'v2'}


@pytest.fixture(scope='module')
def export_onnx():
    return load_script('export_onnx')


@pytest.fixture
def option_file(tmp_path):
    torch.manual_seed(0)
    net = OISR(**{k: v for k, v in NETWORK.items() if k != 'type'})
    weights = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, weights)
    path = tmp_path / 'test.yml'
    path.write_text(yaml.safe_dump({'name': 'tiny_x3', 'scale': 3, 'network_g': NETWORK,
                                    'path': {'pretrain_network_g': str(weights)}}))
    return path


def test_export_matches_pytorch_at_two_sizes(tmp_path, option_file, export_onnx, capsys):
    output = tmp_path / 'model.onnx'
    assert export_onnx.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '24', '20',
                             '--verify']) == 0
    assert 'onnxruntime vs PyTorch: max abs difference' in capsys.readouterr().out
    model = onnx.load(str(output))
    assert model.opset_import[0].version >= 17
    assert {p.key: p.value for p in model.metadata_props} == {'scale': '3', 'arch': 'OISR'}
    height, width = model.graph.input[0].type.tensor_type.shape.dim[2:]
    assert height.dim_param and width.dim_param  # symbolic, not fixed to the traced 24x20

    net = build_network_from_options(load_option_file(option_file))
    # Neither size is the traced one, and they differ in both sides and in parity.
    difference = export_onnx.verify_onnx(output, net, [(17, 30), (40, 23)])
    assert difference < 1e-4

    # The batch is dynamic too: three images at once (the trace had one).
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    session = onnxruntime.InferenceSession(str(output), providers=['CPUExecutionProvider'])
    lq = torch.rand(3, 3, 11, 13, generator=torch.Generator().manual_seed(0))
    (sr, ) = session.run(['sr'], {'lq': lq.numpy()})
    with torch.inference_mode():
        assert np.abs(sr - net.eval()(lq).numpy()).max() < 1e-4


def test_bad_settings_are_reported(tmp_path, option_file, export_onnx, capsys):
    output = tmp_path / 'model.onnx'
    assert export_onnx.main(['-opt', str(option_file), '--output', str(output), '--opset', '13']) == 2
    assert 'opset 13 is too old' in capsys.readouterr().err
    assert export_onnx.main(['-opt', str(tmp_path / 'missing.yml'), '--output', str(output)]) == 2
    assert 'option file not found' in capsys.readouterr().err
    assert not output.exists()
