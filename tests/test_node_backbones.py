"""The NODE-SR dynamics networks: registration, the t plane, shapes, zero start and parameter counts."""

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from oisr_basicsr.archs.node_oisr_arch import NODEOISR
from oisr_basicsr.archs.node_rdn_arch import NODERDN
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.time_plane import append_time_plane

SMALL = {
    'NODEVDSR': dict(num_feat=8, num_layer=4),
    'NODERDN': dict(num_feat=8, growth=4, num_block=2, num_layer=3),
    'NODEOISR': dict(num_feat=8, num_block=2, scheme='rk2', g_variant='v3'),
}


def conv_params(c_in: int, c_out: int, kernel: int = 3) -> int:
    return c_in * c_out * kernel * kernel + c_out


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def randomised(net: nn.Module) -> nn.Module:
    """The network with its zero-initialised last conv given random weights, so that f is not identically 0."""
    nn.init.normal_(net.conv_last.weight, std=0.1)
    nn.init.normal_(net.conv_last.bias, std=0.1)
    return net


@pytest.mark.parametrize('name', SMALL)
def test_registered_with_basicsr_under_its_own_name(name):
    assert ARCH_REGISTRY.get(name).__module__.startswith('oisr_basicsr.archs.')


@pytest.mark.parametrize('name', SMALL)
def test_first_conv_takes_the_image_and_the_t_plane_and_output_keeps_the_size(name):
    torch.manual_seed(0)
    net = randomised(ARCH_REGISTRY.get(name)(**SMALL[name]))
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 4
    out = net(torch.rand(2, 3, 17, 23), torch.tensor([1.5, 3.0]))
    assert out.shape == (2, 3, 17, 23)


@pytest.mark.parametrize('name', SMALL)
def test_output_depends_on_t_through_the_plane_only(name):
    torch.manual_seed(0)
    net = randomised(ARCH_REGISTRY.get(name)(**SMALL[name]))
    x = torch.rand(1, 3, 12, 12)
    at_2, at_3 = net(x, torch.tensor([2.0])), net(x, torch.tensor([3.0]))
    assert (at_2 - at_3).abs().max() > 1e-4
    # A batch of two times gives each sample what it gets alone: the plane is per sample.
    both = net(x.expand(2, -1, -1, -1), torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(both, torch.cat([at_2, at_3]), rtol=1e-5, atol=1e-6)
    # Zeroing the t channel of the first conv removes the dependence on t.
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first_conv.weight[:, 3] = 0
    torch.testing.assert_close(net(x, torch.tensor([2.0])), net(x, torch.tensor([3.0])))


@pytest.mark.parametrize('name', SMALL)
def test_fresh_network_is_zero_dynamics(name):
    # The documented choice: the last conv starts at zero, so an untrained model returns bicubic I(t0).
    net = ARCH_REGISTRY.get(name)(**SMALL[name])
    assert torch.count_nonzero(net(torch.rand(2, 3, 9, 9), torch.tensor([1.2, 4.0]))) == 0


def test_time_plane_holds_each_samples_time():
    x = torch.rand(3, 3, 5, 7, dtype=torch.float64)
    out = append_time_plane(x, torch.tensor([1.1, 2.5, 4.0], dtype=torch.float64))
    assert out.shape == (3, 4, 5, 7) and out.dtype == torch.float64
    assert torch.equal(out[:, :3], x)
    for i, t in enumerate((1.1, 2.5, 4.0)):
        assert torch.all(out[i, 3] == torch.tensor(t, dtype=torch.float64))
    assert torch.all(append_time_plane(x, 2.0)[:, 3] == 2.0)
    with pytest.raises(ValueError, match='one time per sample'):
        append_time_plane(x, torch.tensor([1.5, 2.0]))


def test_vdsr_parameter_count():
    # VDSR (Kim et al. 2016): 20 3x3 conv layers of 64 channels, here 4 channels in (RGB + t) and RGB out.
    expected = conv_params(4, 64) + 18 * conv_params(64, 64) + conv_params(64, 3)
    assert expected == 668_803
    assert num_params(NODEVDSR()) == expected


def test_rdn_parameter_count():
    # RDN (Zhang et al. 2018), D = 16 blocks of C = 8 convs, G = G0 = 64, without the upsampler.
    d, c, g, g0 = 16, 8, 64, 64
    shallow = conv_params(4, g0) + conv_params(g0, g0)
    block = sum(conv_params(g0 + i * g, g) for i in range(c)) + conv_params(g0 + c * g, g0, kernel=1)
    global_fusion = conv_params(d * g0, g0, kernel=1) + conv_params(g0, g0)
    expected = shallow + d * block + global_fusion + conv_params(g0, 3)
    assert num_params(NODERDN()) == expected
    # With RDN's x2 upsampler (conv to 4 G0 channels, pixel shuffle, conv to RGB) and a 3-channel first conv
    # instead, this is the 22.12M that the SR literature quotes for RDN x2.
    rdn_x2 = expected - conv_params(4, g0) + conv_params(3, g0) + conv_params(g0, 4 * g0)
    assert rdn_x2 == 22_123_395


def test_node_oisr_reuses_the_oisr_body():
    # OISR.md's per-block count for LF blocks with the v2 step function: 36 F^2 + 8 F + 4.
    f, num_block = 64, 8
    expected = conv_params(4, f) + num_block * (36 * f**2 + 8 * f + 4) + conv_params(f, f) + conv_params(f, 3)
    assert num_params(NODEOISR(num_feat=f, num_block=num_block, scheme='lf', g_variant='v2')) == expected


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match='num_layer'):
        NODEVDSR(num_layer=1)
    with pytest.raises(ValueError, match='growth'):
        NODERDN(growth=0)
    with pytest.raises(ValueError, match='scheme'):
        NODEOISR(scheme='rk5')
