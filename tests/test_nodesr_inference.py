"""NODESR, the one NODE-SR inference module: equal to the training model's test path and to the solver run by hand,
its fixed scale, its cost; and the tools find it by what a model can do, not by the name of its type."""

import ast
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT
from torch import nn

from oisr_basicsr.data.resize import upscale_lr
from oisr_basicsr.inference.upsampler import NODESRUpsampler, Upsampler, build_upsampler
from oisr_basicsr.model_capabilities import any_scale_models, reads_ode_block, serves_any_scale
from oisr_basicsr.models.node_solver import integrate
from oisr_basicsr.models.nodesr import NODESR
from oisr_basicsr.models.nodesr_model import NODESRModel
from oisr_basicsr.options import parse_ode_options

TINY_VDSR = {'type': 'NODEVDSR', 'num_feat': 6, 'num_layer': 3}
SOLVERS = [{'solver': 'euler', 'num_steps': 3}, {'solver': 'rk4', 'num_steps': 1},
           {'solver': 'midpoint', 'step_size': 0.5}, {'solver': 'dopri5'}]
SCALES = (1.5, 2.7, 4.0)

pytestmark = pytest.mark.usefixtures('one_thread')


def make_model(ode: dict) -> NODESRModel:
    """A NODE-SR model whose dynamics are not zero (so that the solver's work shows in the result)."""
    model = NODESRModel({'name': 'unit', 'model_type': 'NODESRModel', 'num_gpu': 0, 'is_train': False,
                         'dist': False, 'rank': 0, 'world_size': 1, 'network_g': dict(TINY_VDSR), 'ode': ode,
                         'path': {'pretrain_network_g': None, 'strict_load_g': True}})
    torch.manual_seed(1)
    nn.init.normal_(model.net_g.conv_last.weight, std=0.05)
    nn.init.normal_(model.net_g.conv_last.bias, std=0.05)
    return model


@pytest.mark.parametrize('ode', SOLVERS, ids=[block['solver'] for block in SOLVERS])
def test_module_equals_the_models_test_path_and_the_solver_by_hand(ode):
    model = make_model(ode)
    nodesr = NODESR(model.net_g.eval(), parse_ode_options(ode))
    torch.manual_seed(0)
    lq = torch.rand(2, 3, 9, 11)
    for scale in SCALES:
        # Without ground truth: floor(h t) x floor(w t); with it: the reference's size (here one pixel more).
        for gt_size in (None, (int(9 * scale) + 1, int(11 * scale) + 1)):
            data = {'lq': lq, 'scale': torch.full((2, ), scale)}
            if gt_size is not None:
                data['gt'] = torch.rand(2, 3, *gt_size)
            model.feed_data(data)
            model.test()
            with torch.no_grad():
                module = nodesr(lq, scale, gt_size)
                by_hand = integrate(model.net_g, upscale_lr(lq, scale, gt_size), scale, parse_ode_options(ode)).final
            assert module.shape == (2, 3, *(gt_size or (int(9 * scale), int(11 * scale))))
            assert torch.equal(module, model.output)
            assert torch.equal(module, by_hand)
            assert (module - upscale_lr(lq, scale, gt_size)).abs().amax() > 1e-3  # the dynamics did act


def test_models_super_resolve_is_the_modules():
    model = make_model({'solver': 'rk4', 'num_steps': 2})
    lq = torch.rand(1, 3, 8, 10)
    solution = model.super_resolve(lq, 2.5, return_states=True)
    with torch.no_grad():
        expected = NODESR(model.net_g, model.ode).super_resolve(lq, 2.5, return_states=True)
    assert torch.equal(solution.final, expected.final) and torch.equal(solution.states, expected.states)
    torch.testing.assert_close(solution.times, torch.tensor([2.5, 1.75, 1.0]))
    assert model.net_g.training  # the mode the model had is restored


def test_a_fixed_scale_maps_the_lr_batch_alone():
    model = make_model({'solver': 'rk4', 'num_steps': 2})
    ode = parse_ode_options({'solver': 'rk4', 'num_steps': 2})
    lq = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        fixed = NODESR(model.net_g, ode, scale=3.3)(lq)
        given = NODESR(model.net_g, ode)(lq, 3.3)
    assert fixed.shape == (1, 3, 23, 19) and torch.equal(fixed, given)
    with pytest.raises(ValueError, match='NODESR needs a scale'):
        NODESR(model.net_g, ode)(lq)


def test_network_evaluations_and_macs_count_every_solver_stage():
    net = make_model({}).net_g
    nodesr = NODESR(net, parse_ode_options({'solver': 'rk4', 'num_steps': 2}), scale=2.5)
    assert nodesr.network_evaluations() == 2 * 4
    assert NODESR(net, parse_ode_options({'solver': 'euler', 'step_size': 0.5})).network_evaluations(3.0) == 4
    # Conv weights times output positions, per evaluation of f at the output size.
    conv_weights = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))
    assert nodesr.macs((20, 30)) == 8 * conv_weights * 20 * 30
    assert next(net.parameters()).device.type == 'cpu'  # counted on a copy
    with pytest.raises(ValueError, match='dopri5 chooses its steps from the image'):
        NODESR(net, parse_ode_options({'solver': 'dopri5'}), scale=2.0).network_evaluations()


def test_capabilities_come_from_the_model_class():
    assert serves_any_scale({'model_type': 'NODESRModel'}) and reads_ode_block({'model_type': 'NODESRModel'})
    for opt in ({'model_type': 'SRModel'}, {'model_type': 'AcceleratedSRModel'}, {'model_type': 'NoSuchModel'}, {}):
        assert not serves_any_scale(opt) and not reads_ode_block(opt)
    assert any_scale_models() == ['NODESRModel']


def test_inference_builds_no_training_model(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError('inference built a training model')

    weights = tmp_path / 'node.pth'
    torch.save({'params': make_model({}).net_g.state_dict()}, weights)
    monkeypatch.setattr(NODESRModel, '__init__', refuse)
    opt = {'name': 'x', 'model_type': 'NODESRModel', 'ode': {'solver': 'euler', 'num_steps': 2},
           'network_g': dict(TINY_VDSR), 'path': {'pretrain_network_g': str(weights)}}
    upsampler = build_upsampler(opt, device='cpu', scale=2.5)
    assert isinstance(upsampler, NODESRUpsampler) and upsampler.scale == 2.5
    lq = torch.rand(1, 3, 4, 6)
    with torch.no_grad():
        expected = NODESR(upsampler.nodesr.dynamics, parse_ode_options(opt['ode']))(lq, 2.5).clamp(0, 1)
    assert torch.equal(upsampler(lq), expected) and expected.shape == (1, 3, 10, 15)
    fixed = build_upsampler({'name': 'b', 'model_type': 'SRModel', 'scale': 2,
                             'network_g': {'type': 'Bicubic', 'upscale': 2}}, device='cpu')
    assert isinstance(fixed, Upsampler) and fixed.scale == 2


def test_the_model_type_is_named_only_where_the_model_registers():
    # Everything else asks the registered class what it can do (oisr_basicsr.model_capabilities); the option
    # templates write the name into the YAML files they generate.
    allowed = {Path('oisr_basicsr/templates/nodesr_recipes.py')}
    named = set()
    for path in sorted([*(REPO_ROOT / 'oisr_basicsr').rglob('*.py'), *(REPO_ROOT / 'oisr_cli').rglob('*.py')]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value == 'NODESRModel':
                named.add(path.relative_to(REPO_ROOT))
    assert named <= allowed, sorted(named - allowed)
