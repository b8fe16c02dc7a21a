"""benchmarks/bench_nodesr.py --paper-memory: fake tensors give the real peak, the gradient modes scale as they
should, and the option files state what the trace measures."""

import pytest
import torch
from conftest import REPO_ROOT

from benchmarks import bench_nodesr as bench
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.options import GRADIENT_MODES
from oisr_basicsr.templates.nodesr_recipes import BACKBONES

GIB = 2**30


def _vdsr_setup(num_feat: int, num_layer: int, batch: int, size: int):
    def setup():
        torch.manual_seed(0)
        net = NODEVDSR(num_feat=num_feat, num_layer=num_layer)
        torch.nn.init.normal_(net.conv_last.weight, std=0.01)
        # Two start times: integrate reads them (t0 >= 1, steps per sample), so they must keep their values.
        t0 = torch.tensor([1.5, 3.0] * (batch // 2))
        return net, torch.rand(batch, 3, size, size), t0, torch.rand(batch, 3, size, size)

    return setup


@pytest.mark.parametrize('mode', GRADIENT_MODES)
def test_fake_step_peak_is_the_real_one(mode):
    setup = _vdsr_setup(num_feat=8, num_layer=4, batch=2, size=24)
    for num_steps in (1, 2):
        real = bench.step_peak(setup, mode, num_steps, fake=False)
        assert real > 2 * 8 * 24 * 24 * 4  # at least one hidden feature map
        assert bench.step_peak(setup, mode, num_steps) == real


def test_fake_mode_leaves_torch_as_it_was():
    limit = bench.fake_tensor.CONSTANT_NUMEL_LIMIT
    with bench.fake_tensor_mode():
        assert bench.fake_tensor.CONSTANT_NUMEL_LIMIT == bench.SMALL_CONSTANT_NUMEL
        assert torch.full((4, ), 3.0).tolist() == [3.0] * 4  # a small factory result keeps its values
        big = torch.rand(4, 64, 32, 32)
        assert isinstance(big, bench.fake_tensor.FakeTensor)
    assert bench.fake_tensor.CONSTANT_NUMEL_LIMIT == limit
    assert not isinstance(torch.full((4, ), 3.0), bench.fake_tensor.FakeTensor)


def test_backprop_peak_grows_by_the_activations_of_every_evaluation_and_the_others_by_states_only():
    batch, size, num_feat, num_layer = 2, 64, 16, 6
    setup = _vdsr_setup(num_feat, num_layer, batch, size)
    state, feature_map = batch * 3 * size * size * 4, batch * num_feat * size * size * 4
    growth = {}
    for mode in GRADIENT_MODES:
        one, two, four = (bench.step_peak(setup, mode, num_steps) for num_steps in (1, 2, 4))
        growth[mode] = (four - one) / 12  # per evaluation: 3 more RK4 steps, 4 evaluations each
        if mode == 'backprop':
            # Linear in the steps, and each evaluation keeps at least its num_layer - 1 hidden feature maps.
            assert (four - one) / (two - one) == pytest.approx(3, rel=0.05)
            assert growth[mode] > (num_layer - 1) * feature_map
        else:
            # Only image-sized states (stage inputs, RK4 slopes) accumulate: at most two per evaluation.
            assert 0 <= growth[mode] <= 2 * state, mode
    assert max(growth['checkpoint'], growth['adjoint']) < growth['backprop'] / 10


@pytest.mark.parametrize('backbone', ['VDSR', 'RDN'])
def test_option_files_state_the_traced_peak(backbone):
    stated = BACKBONES[backbone]['memory']
    setup = bench.paper_setup(backbone)
    for mode in ('checkpoint', 'backprop'):
        assert bench.step_peak(setup, mode, 1) / GIB == pytest.approx(stated[mode], abs=0.006), mode
    text = (REPO_ROOT / 'options' / f'train_NODESR_{backbone}.yml').read_text()
    comment = ' '.join(text.replace('#', ' ').split())
    assert f'{stated["checkpoint"]:.1f} GiB with checkpoint, {stated["backprop"]:.1f} GiB with backprop' in comment
