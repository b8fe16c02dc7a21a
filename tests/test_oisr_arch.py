"""The OISR network against the paper: parameter counts, MACs, block equations, structure and option errors."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)
from oisr_basicsr.archs.ode_schemes import BUTCHER_TABLEAUS, G_VARIANTS, make_ode_block, make_step_function
from oisr_basicsr.archs.oisr_arch import DIV2K_RGB_MEAN, OISR, PAPER_MODELS, build_paper_model
from oisr_basicsr.complexity import network_complexity

SCALES = (2, 3, 4)
PAPER_CONFIGS = [(name, scale) for name in PAPER_MODELS for scale in SCALES]

# OISR.md, "Parameter counts": conv weights and biases only, per scale x2, x3, x4. These are the spec.
CONV_PARAMS = {
    'LF-s': (1_369_859, 1_554_499, 1_517_571),
    'RK2-s': (1_369_859, 1_554_499, 1_517_571),
    'LF': (4_967_599, 5_637_989, 5_503_911),
    'RK2': (4_967_599, 5_637_989, 5_503_911),
    'RK3': (41_909_763, 44_860_163, 44_270_083),
}

# The authors' totals that OISR.md quotes verbatim; the derivation below must reproduce them.
AUTHORS_TOTALS = {('LF-s', 2): 1_371_963, ('RK2-s', 2): 1_371_939, ('RK3', 4): 44_287_113}

# OISR.md, "MACs" for a 1280x720 HR output, in G.
PAPER_MACS = {
    2: {'LF-s': 316.2, 'RK2-s': 316.2, 'LF': 1145.7, 'RK2': 1145.7, 'RK3': 9656.5},
    3: {'LF-s': 160.1, 'RK2-s': 160.1, 'LF': 578.6, 'RK2': 578.6, 'RK3': 4590.1},
    4: {'LF-s': 114.2, 'RK2-s': 114.2, 'LF': 412.2, 'RK2': 412.2, 'RK3': 2962.5},
}

# N and F of each paper model, restated from OISR.md's table rather than read from PAPER_MODELS.
PAPER_SIZES = {'LF-s': ('lf', 8, 64), 'RK2-s': ('rk2', 8, 64), 'LF': ('lf', 8, 122), 'RK2': ('rk2', 8, 122),
               'RK3': ('rk3', 22, 256)}


def conv_params(c_in: int, c_out: int, kernel: int = 3) -> int:
    return c_in * c_out * kernel * kernel + c_out


def authors_total_params(name: str, scale: int) -> int:
    """The authors' parameter count, derived from OISR.md's per-block formulas and the EDSR skeleton."""
    scheme, num_block, f = PAPER_SIZES[name]
    per_block = {'lf': 36 * f**2 + 8 * f + 4, 'rk2': 36 * f**2 + 8 * f + 1, 'rk3': 27 * f**2 + 6 * f + 5}[scheme]
    upsampler = {2: conv_params(f, 4 * f), 3: conv_params(f, 9 * f), 4: 2 * conv_params(f, 4 * f)}[scale]
    mean_shift = 2 * conv_params(3, 3, kernel=1)  # the authors' trainable sub_mean/add_mean 1x1 convs: 24
    return conv_params(3, f) + num_block * per_block + conv_params(f, f) + upsampler + conv_params(f, 3) + mean_shift


def test_derivation_reproduces_the_quoted_author_totals():
    # Guards the derivation itself: if it were wrong, the parametrised test below would check the wrong thing.
    for (name, scale), total in AUTHORS_TOTALS.items():
        assert authors_total_params(name, scale) == total


@pytest.mark.parametrize('name,scale', PAPER_CONFIGS)
def test_parameter_counts_match_the_paper(name: str, scale: int):
    with torch.device('meta'):
        net = build_paper_model(name, scale)
    conv = sum(p.numel() for m in net.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    total = sum(p.numel() for p in net.parameters())
    assert conv == CONV_PARAMS[name][SCALES.index(scale)]
    # Our mean shift is a fixed buffer; the authors' is a 24-parameter trainable 1x1 conv pair.
    assert total + 24 == authors_total_params(name, scale)
    counted = network_complexity(dict(type='OISR', upscale=scale, **PAPER_MODELS[name]), scale)
    assert (counted['params'], counted['conv_params']) == (total, conv)


@pytest.mark.parametrize('name,scale', [(name, scale) for name in PAPER_MODELS for scale in (2, 4)])
def test_macs_match_the_paper(name: str, scale: int):
    macs = network_complexity(dict(type='OISR', upscale=scale, **PAPER_MODELS[name]), scale, (720, 1280))['macs']
    assert abs(macs / 1e9 - PAPER_MACS[scale][name]) < 0.1


@pytest.mark.parametrize('name', PAPER_MODELS)
def test_x3_macs_match_the_paper_for_a_426_pixel_wide_input(name: str):
    # 1280 is not divisible by 3: the paper's x3 numbers are those of a 426x240 LR input (1278x720 output),
    # while network_complexity rounds the LR width up to 427, which is 0.23% more.
    opt = dict(type='OISR', upscale=3, **PAPER_MODELS[name])
    assert abs(network_complexity(opt, 3, (720, 1278))['macs'] / 1e9 - PAPER_MACS[3][name]) < 0.1
    assert network_complexity(opt, 3, (720, 1280))['macs'] / 1e9 > PAPER_MACS[3][name] + 0.3


# --- The blocks' equations, restated with torch.nn.functional on the blocks' own weights -------------------------

NUM_FEAT = 4


def layers_of(step: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in step.modules() if isinstance(m, kind)]


def g_v1(step: nn.Module, y: torch.Tensor) -> torch.Tensor:
    (conv,), (prelu,) = layers_of(step, nn.Conv2d), layers_of(step, nn.PReLU)
    return F.prelu(F.conv2d(y, conv.weight, conv.bias, padding=1), prelu.weight)


def g_v2(step: nn.Module, y: torch.Tensor) -> torch.Tensor:
    (conv,), (prelu,) = layers_of(step, nn.Conv2d), layers_of(step, nn.PReLU)
    return F.conv2d(F.prelu(y, prelu.weight), conv.weight, conv.bias, padding=1)


def g_v3(step: nn.Module, y: torch.Tensor) -> torch.Tensor:
    (conv1, conv2), (prelu1, prelu2) = layers_of(step, nn.Conv2d), layers_of(step, nn.PReLU)
    y = F.conv2d(F.prelu(y, prelu1.weight), conv1.weight, conv1.bias, padding=1)
    return F.conv2d(F.prelu(y, prelu2.weight), conv2.weight, conv2.bias, padding=1)


def g_edsr(step: nn.Module, y: torch.Tensor) -> torch.Tensor:
    conv1, conv2 = layers_of(step, nn.Conv2d)
    return F.conv2d(F.relu(F.conv2d(y, conv1.weight, conv1.bias, padding=1)), conv2.weight, conv2.bias, padding=1)


G_REFERENCES = {'v1': g_v1, 'v2': g_v2, 'v3': g_v3, 'edsr': g_edsr}


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random float64 weights, PReLU slopes and scalars, so no initial value can make a wrong formula agree."""
    generator = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for param in module.parameters():
            scale = 0.3 if param.dim() == 4 else 1.0
            param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=torch.float64))
    return module


def random_features(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, NUM_FEAT, 5, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def build_block(scheme: str, g_variant: str) -> nn.Module:
    num_steps = {'lf': 4, 'rk2': 2, 'rk3': 3, 'euler': 1}[scheme]
    steps = [make_step_function(g_variant, NUM_FEAT) for _ in range(num_steps)]
    return randomise_(make_ode_block(scheme, steps))


@pytest.mark.parametrize('g_variant', G_VARIANTS)
def test_step_functions_follow_their_layer_order(g_variant: str):
    step = randomise_(make_step_function(g_variant, NUM_FEAT))
    x = random_features()
    torch.testing.assert_close(step(x), G_REFERENCES[g_variant](step, x), rtol=0, atol=1e-5)
    # The other variants' orders must give something else, or this test could not tell them apart.
    if g_variant in ('v1', 'v2'):
        other = g_v2 if g_variant == 'v1' else g_v1
        assert (step(x) - other(step, x)).abs().max() > 1e-3


def test_leapfrog_block_equations():
    block = build_block('lf', 'v2')
    g = [lambda y, step=step: g_v2(step, y) for step in block.steps]
    s1, s2, s3, s4 = block.scale1, block.scale2, block.scale3, block.scale4
    x = random_features()
    y1 = s1 * g[0](x)
    y2 = x + s2 * g[1](y1)
    y3 = y1 + s3 * g[2](y2)
    expected = y2 + s4 * g[3](y3)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


def test_rk2_block_is_heun_with_g_v3():
    block = build_block('rk2', 'v3')
    g1, g2 = (lambda y, step=step: g_v3(step, y) for step in block.steps)
    x = random_features()
    k1 = g1(x)
    expected = x + block.scale1 * (k1 + g2(x + k1))
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


def test_rk3_block_is_kutta_with_g_v2():
    block = build_block('rk3', 'v2')
    g1, g2, g3 = (lambda y, step=step: g_v2(step, y) for step in block.steps)
    s1, s2, s3, s4, s5 = (getattr(block, f'scale{i}') for i in range(1, 6))
    x = random_features()
    k1 = g1(x)
    k2 = g2(x + s1 * k1)
    k3 = g3(x + s2 * k2 + s3 * k1)
    expected = x + s5 * (k1 + s4 * k2 + k3)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


def test_euler_block_with_g_edsr_is_the_edsr_residual_block():
    block = build_block('euler', 'edsr')
    x = random_features()
    torch.testing.assert_close(block(x), x + block.b1 * g_edsr(block.steps[0], x), rtol=0, atol=1e-5)


def test_euler_edsr_network_is_basicsr_edsr():
    # Local import: basicsr may only be imported after oisr_basicsr, which ruff's import sorting would undo.
    from basicsr.archs.edsr_arch import EDSR

    torch.manual_seed(0)
    oisr = OISR(num_feat=8, num_block=2, upscale=4, scheme='euler', g_variant='edsr').double()
    edsr = EDSR(3, 3, num_feat=8, num_block=2, upscale=4).double()
    oisr_convs, edsr_convs = layers_of(oisr, nn.Conv2d), layers_of(edsr, nn.Conv2d)
    assert [c.weight.shape for c in oisr_convs] == [c.weight.shape for c in edsr_convs]
    with torch.no_grad():
        for ours, theirs in zip(oisr_convs, edsr_convs, strict=True):
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    x = torch.rand(1, 3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(oisr(x), edsr(x), rtol=0, atol=1e-6)


# --- Structure ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', PAPER_MODELS)
def test_prelus_are_per_channel_with_init_quarter(name: str):
    scheme, _, _ = PAPER_SIZES[name]
    net = OISR(upscale=2, **{**PAPER_MODELS[name], 'num_feat': 6, 'num_block': 2})
    prelus = layers_of(net, nn.PReLU)
    steps_per_block = {'lf': 4, 'rk2': 2, 'rk3': 3}[scheme]
    prelus_per_step = 2 if PAPER_MODELS[name]['g_variant'] == 'v3' else 1
    assert len(prelus) == 2 * steps_per_block * prelus_per_step
    for prelu in prelus:
        assert prelu.weight.shape == (6, )
        assert torch.equal(prelu.weight, torch.full((6, ), 0.25))


@pytest.mark.parametrize('scheme,initial', [
    ('lf', {'scale1': 2.0, 'scale2': 2.0, 'scale3': 2.0, 'scale4': 2.0}),
    ('rk2', {'scale1': 0.5}),
    ('rk3', {'scale1': 0.5, 'scale2': 2.0, 'scale3': -1.0, 'scale4': 4.0, 'scale5': 1 / 6}),
])
def test_scalars_start_at_the_authors_values(scheme: str, initial: dict[str, float]):
    net = OISR(num_feat=4, num_block=2, upscale=2, scheme=scheme)
    for block in net.body.blocks:
        scalars = dict(block.named_parameters(recurse=False))
        assert set(scalars) == set(initial)
        for name, value in initial.items():
            assert scalars[name].shape == (1, )
            assert scalars[name].item() == pytest.approx(value, rel=1e-7)


def test_mean_shift_is_a_fixed_buffer():
    net = OISR(num_feat=4, num_block=1, upscale=2)
    assert not any('mean' in name for name, _ in net.named_parameters())
    buffers = dict(net.named_buffers())
    for key in ('sub_mean.weight', 'sub_mean.bias', 'add_mean.weight', 'add_mean.bias'):
        assert key in buffers and key in net.state_dict()


@pytest.mark.parametrize('rgb_mean,img_range', [(DIV2K_RGB_MEAN, 255.0), ((0.1, 0.5, 0.9), 1.0)])
def test_mean_image_maps_to_itself_without_biases(rgb_mean: tuple[float, ...], img_range: float):
    # With every conv bias zero the trunk maps 0 to 0, so only an input mean shift that exactly cancels the
    # output one sends the constant mean image to itself; random weights make any mismatch visible.
    torch.manual_seed(0)
    net = OISR(num_feat=8, num_block=2, upscale=2, scheme='rk3', rgb_mean=rgb_mean, img_range=img_range).double()
    with torch.no_grad():
        for conv in layers_of(net, nn.Conv2d):
            conv.bias.zero_()
    mean = torch.tensor(rgb_mean, dtype=torch.float64).view(1, 3, 1, 1)
    mean_image, mean_output = mean.expand(1, 3, 6, 5), mean.expand(1, 3, 12, 10)
    torch.testing.assert_close(net(mean_image), mean_output, rtol=0, atol=1e-6)
    # A different image must not come out as the mean, or the check above proves nothing.
    assert (net(mean_image + 0.1) - mean_output).abs().max() > 1e-3


def test_zero_last_conv_outputs_the_mean_everywhere():
    net = OISR(num_feat=8, num_block=2, upscale=3, rgb_mean=(0.2, 0.3, 0.7))
    with torch.no_grad():
        net.conv_last.weight.zero_()
        net.conv_last.bias.zero_()
    out = net(torch.rand(2, 3, 4, 5))
    torch.testing.assert_close(out, torch.tensor([0.2, 0.3, 0.7]).view(1, 3, 1, 1).expand(2, 3, 12, 15))


@pytest.mark.parametrize('upscale', [2, 3, 4, 8])
def test_output_shape_is_input_times_upscale(upscale: int):
    net = OISR(num_feat=4, num_block=1, upscale=upscale)
    assert net(torch.rand(2, 3, 5, 7)).shape == (2, 3, 5 * upscale, 7 * upscale)


@pytest.mark.parametrize('scheme', ['lf', 'rk2', 'rk3', 'rk4'])
def test_fixed_coefficients_are_buffers(scheme: str):
    learnable = OISR(num_feat=4, num_block=2, upscale=2, scheme=scheme)
    fixed = OISR(num_feat=4, num_block=2, upscale=2, scheme=scheme, learnable_coefficients=False)
    layer_params = sum(p.numel() for m in fixed.modules() if isinstance(m, (nn.Conv2d, nn.PReLU))
                       for p in m.parameters(recurse=False))
    assert sum(p.numel() for p in fixed.parameters()) == layer_params
    # The scalars did not vanish: they moved to the buffers, with the same names and values.
    scalars = {k: v for k, v in learnable.named_parameters() if v.shape == (1, )}
    assert scalars
    fixed_buffers = dict(fixed.named_buffers())
    for key, value in scalars.items():
        assert torch.equal(fixed_buffers[key], value.detach())


# --- Errors -------------------------------------------------------------------------------------------------------


def test_unknown_scheme_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"^scheme: 'rk5' is not supported; choose one of ") as error:
        OISR(num_feat=4, num_block=1, scheme='rk5')
    assert all(scheme in str(error.value) for scheme in ('lf', 'rk2', 'rk3', *BUTCHER_TABLEAUS))


def test_unknown_g_variant_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"^g_variant: 'v4' is not supported; choose one of v1, v2, v3, edsr"):
        OISR(num_feat=4, num_block=1, g_variant='v4')


@pytest.mark.parametrize('upscale', [5, 1, 6, 2.0])
def test_bad_upscale_names_the_key_and_the_choices(upscale):
    with pytest.raises(ValueError, match=r'^upscale: .* choose 2, 3, 4 or another power of 2'):
        OISR(num_feat=4, num_block=1, upscale=upscale)


@pytest.mark.parametrize('kwargs', [dict(rgb_mean=(0.4, 0.4)), dict(num_in_ch=1), dict(num_out_ch=1)])
def test_rgb_mean_length_mismatch_names_the_keys(kwargs: dict):
    with pytest.raises(ValueError, match=r'^rgb_mean: .*num_in_ch.*num_out_ch'):
        OISR(num_feat=4, num_block=1, **kwargs)
