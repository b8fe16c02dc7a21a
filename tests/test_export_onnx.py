"""oisr export: dynamic batch, height and width, parity with PyTorch checked by the exporter in fp32
and fp16 (nothing written when it fails or the graph outputs NaN), bf16 refused where onnxruntime cannot run it,
NODE-SR unrolled for one scale, and the model card beside the file."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
import yaml

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.inference.loading import build_network_from_options, load_option_file
from oisr_basicsr.inference.upsampler import build_upsampler
from oisr_basicsr.tools import export_onnx as export_onnx_tool
from oisr_cli.commands import export as export_command

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxscript')
onnxruntime = pytest.importorskip('onnxruntime')

NETWORK = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 3, 'scheme': 'rk3', 'g_variant': 'v2'}
# Bounds on the largest difference from PyTorch fp32, images in [0, 1]: fp32 float rounding; fp16 (half precision,
# a resolution of 2^-11 near 1) a quarter of an 8-bit level on this network.
FP32_BOUND, FP16_BOUND = 1e-5, 1e-3


@pytest.fixture(scope='module')
def export_onnx():
    return export_onnx_tool


@pytest.fixture
def option_file(tmp_path):
    torch.manual_seed(0)
    return _option_file_with(tmp_path, OISR(**{k: v for k, v in NETWORK.items() if k != 'type'}))


def _option_file_with(tmp_path, net: torch.nn.Module):
    """An option file whose ``path.pretrain_network_g`` holds ``net``'s weights."""
    weights = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, weights)
    path = tmp_path / 'test.yml'
    path.write_text(yaml.safe_dump({'name': 'tiny_x3', 'scale': 3, 'network_g': NETWORK,
                                    'path': {'pretrain_network_g': str(weights)}}))
    return path


def _printed_difference(out: str) -> float:
    line = next(line for line in out.splitlines() if line.startswith('parity, onnxruntime'))
    return float(line.split('max abs difference ')[1].split()[0])


@pytest.mark.parametrize('precision,bound', [('fp32', FP32_BOUND), ('fp16', FP16_BOUND)])
def test_export_checks_parity_and_has_dynamic_sizes(tmp_path, option_file, export_onnx, capsys, precision, bound,
                                                     one_thread):
    output = tmp_path / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '24', '20',
                             '--precision', precision]) == 0
    out = capsys.readouterr().out
    assert f'parity, onnxruntime {precision} vs PyTorch fp32 on a generated image (24x20, 37x27 LR)' in out
    assert _printed_difference(out) < bound
    model = onnx.load(str(output))
    assert model.opset_import[0].version == 18
    assert {p.key: p.value for p in model.metadata_props} == {'scale': '3', 'arch': 'OISR', 'precision': precision,
                                                              'opset': '18'}
    elem_type = {'fp32': onnx.TensorProto.FLOAT, 'fp16': onnx.TensorProto.FLOAT16}[precision]
    assert model.graph.input[0].type.tensor_type.elem_type == elem_type
    height, width = model.graph.input[0].type.tensor_type.shape.dim[2:]
    assert height.dim_param and width.dim_param  # symbolic, not fixed to the traced 24x20

    net = build_network_from_options(load_option_file(option_file))
    # Neither size is the traced one, and they differ in both sides and in parity.
    inputs = [torch.rand(1, 3, 17, 30), torch.rand(1, 3, 40, 23)]
    assert export_onnx.verify_onnx(output, net, inputs, precision) < bound
    card = json.loads((tmp_path / 'model.onnx.card.json').read_text())
    assert card['onnx'].pop('parityMaxAbsDifference') == pytest.approx(_printed_difference(out), rel=0.01)
    assert card['onnx'] == {'opset': 18, 'precision': precision, 'dynamicAxes': True, 'input': 'lq', 'output': 'sr'}
    assert card['parameters'] == sum(p.numel() for p in net.parameters())


def test_bf16_is_refused_where_onnxruntime_cannot_run_it(tmp_path, option_file, export_onnx, capsys, one_thread):
    output = tmp_path / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '8', '8',
                             '--precision', 'bf16']) == 2
    assert 'error: onnxruntime cannot run the bf16 graph' in capsys.readouterr().err
    assert list(tmp_path.glob('*.onnx*')) == []  # nothing written, no temporary file left


def test_parity_on_the_users_image(tmp_path, option_file, export_onnx, capsys, one_thread):
    import cv2
    image = tmp_path / 'photo.png'
    cv2.imwrite(str(image), (torch.rand(19, 26, 3) * 255).byte().numpy())
    assert export_command.main(['-opt', str(option_file), '--output', str(tmp_path / 'm.onnx'),
                             '--parity-image', str(image)]) == 0
    assert f'on {image} (19x26, 32x33 LR)' in capsys.readouterr().out


def test_nodesr_exports_for_one_scale_with_parity(tmp_path, export_onnx, capsys, one_thread):
    torch.manual_seed(0)
    dynamics = NODEVDSR(num_feat=8, num_layer=3)
    torch.nn.init.normal_(dynamics.conv_last.weight, std=0.05)  # not the zero (bicubic) start
    weights = tmp_path / 'node.pth'
    torch.save({'params': dynamics.state_dict()}, weights)
    options = {'name': 'node', 'model_type': 'NODESRModel', 'num_gpu': 0,
               'network_g': {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3},
               'ode': {'solver': 'rk4', 'num_steps': 2}, 'path': {'pretrain_network_g': str(weights)}}
    option_file = tmp_path / 'node.yml'
    option_file.write_text(yaml.safe_dump(options))
    output = tmp_path / 'node_x2.5.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--scale', '2.5',
                             '--sample-size', '14', '11']) == 0
    out = capsys.readouterr().out
    assert _printed_difference(out) < FP32_BOUND
    assert 'fixed 14x11 LR input, batch 1' in out

    # Independently of the exporter: onnxruntime against the package's NODE-SR inference on another image.
    import onnxruntime
    session = onnxruntime.InferenceSession(str(output), providers=['CPUExecutionProvider'])
    lq = torch.rand(1, 3, 14, 11)
    (result, ) = session.run(['sr'], {'lq': lq.numpy()})
    expected = build_upsampler(load_option_file(option_file), device='cpu', scale=2.5)(lq)
    assert result.shape == (1, 3, 35, 27)
    assert abs(torch.from_numpy(result).clamp(0, 1) - expected).max() < FP32_BOUND
    assert abs(expected - build_upsampler(load_option_file(option_file), device='cpu', scale=2.5)(
        torch.rand(1, 3, 14, 11))).max() > 1e-2  # the output depends on the input (not a constant graph)
    card = json.loads((tmp_path / 'node_x2.5.onnx.card.json').read_text())
    assert (card['scale'], card['solver'], card['solverSteps'], card['networkEvaluations']) == (2.5, 'rk4', 2, 8)
    assert card['onnx']['dynamicAxes'] is False and card['lrSize'] == [14, 11]


def test_batch_is_dynamic(tmp_path, option_file, export_onnx, one_thread):
    output = tmp_path / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '24', '20']) == 0
    model = onnx.load(str(output))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    # Three images at once, where the trace had one.
    session = onnxruntime.InferenceSession(str(output), providers=['CPUExecutionProvider'])
    lq = torch.rand(3, 3, 11, 13, generator=torch.Generator().manual_seed(0))
    (sr, ) = session.run(['sr'], {'lq': lq.numpy()})
    net = build_network_from_options(load_option_file(option_file))
    with torch.inference_mode():
        assert np.abs(sr - net(lq).numpy()).max() < 1e-4


def test_bad_settings_are_reported(tmp_path, option_file, export_onnx, capsys):
    output = tmp_path / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--opset', '13']) == 2
    assert 'opset 13 is too old' in capsys.readouterr().err
    assert export_command.main(['-opt', str(tmp_path / 'missing.yml'), '--output', str(output)]) == 2
    assert 'option file not found' in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize('precision,bound', [('fp32', FP32_BOUND), ('fp16', FP16_BOUND)])
def test_parity_gate_refuses_a_reference_off_by_more_than_the_tolerance(tmp_path, option_file, export_onnx, capsys,
                                                                        monkeypatch, precision, bound, one_thread):
    # Twice the default tolerance, which applies without --tolerance.
    tolerance = export_onnx.DEFAULT_TOLERANCE[precision]
    offset = 2 * tolerance
    plan_export = export_onnx.plan_export

    def plan_with_an_offset_reference(*args):
        plan = plan_export(*args)
        return dataclasses.replace(plan, reference=lambda lq: plan.reference(lq) + offset)

    monkeypatch.setattr(export_onnx, 'plan_export', plan_with_an_offset_reference)
    output = tmp_path / 'exported' / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '12', '10',
                             '--precision', precision]) == 2
    (line, ) = capsys.readouterr().err.splitlines()
    found = re.fullmatch(rf'error: onnxruntime and PyTorch differ by (\S+) > {tolerance:g}; nothing was written', line)
    assert found, line
    assert abs(float(found.group(1)) - offset) < bound  # the offset, up to the graph's own error
    assert not output.parent.exists()  # no folder, no model, no card, no temporary file


def test_a_graph_that_outputs_nan_is_refused(tmp_path, export_onnx, capsys, one_thread):
    torch.manual_seed(0)
    net = OISR(**{k: v for k, v in NETWORK.items() if k != 'type'})
    # conv_first's weights beyond fp16's range (65504), conv_last's scaled back: PyTorch fp32 gives an image in
    # [0, 1] as before, the fp16 graph NaN everywhere.
    with torch.no_grad():
        net.conv_first.weight.mul_(1e7)
        net.conv_first.bias.mul_(1e7)
        net.conv_last.weight.div_(1e7)
    option_file = _option_file_with(tmp_path, net)
    output = tmp_path / 'exported' / 'model.onnx'
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '12', '10',
                             '--precision', 'fp16']) == 2
    assert capsys.readouterr().err.splitlines() == [
        'error: onnxruntime gives NaN or infinity for a (12, 10) input: the fp16 graph overflows (weights or '
        'activations beyond the range of fp16) or is broken']
    assert not output.parent.exists()  # nothing written, not even the folder

    # The same weights in fp32 export, so the fp16 overflow was the cause; and a NaN from the reference is a NaN
    # difference, which the gate refuses, not a difference of 0.
    assert export_command.main(['-opt', str(option_file), '--output', str(output), '--sample-size', '12', '10']) == 0
    lq = torch.rand(1, 3, 12, 10)
    assert math.isnan(export_onnx.verify_onnx(output, lambda batch: torch.full((1, 3, 36, 30), math.nan), [lq]))
