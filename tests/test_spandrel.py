"""spandrel loads OISR checkpoints (BasicSR .pth and .safetensors) with every hyper-parameter detected from the
tensors alone; BasicSR's EDSR, RCAN and SwinIR state dicts are not taken for OISR."""

import copy

import pytest
import torch
import yaml
from conftest import REPO_ROOT

import oisr_basicsr  # noqa: F401  (registers OISR in spandrel's main registry)

# isort: split
from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.rcan_arch import RCAN
from basicsr.archs.swinir_arch import SwinIR

from oisr_basicsr.archs.ode_schemes import BUTCHER_TABLEAUS, G_VARIANTS
from oisr_basicsr.archs.oisr_arch import OISR, PAPER_MODELS, build_paper_model
from oisr_basicsr.checkpoints.io import atomic_save

spandrel = pytest.importorskip('spandrel')
from oisr_basicsr.spandrel_support import OISRArch, detect_options  # noqa: E402  (needs spandrel)

# The paper's models as their option files give them, at reduced width (distinct per model, so a mix-up would
# show), at every scale.
REDUCED_WIDTH = {'LF-s': 8, 'RK2-s': 6, 'LF': 10, 'RK2': 12, 'RK3': 4}


def _paper_config(name: str, scale: int) -> dict:
    option_file = REPO_ROOT / 'options' / f'test_OISR_{name.replace("-", "_")}_x{scale}.yml'
    network = yaml.safe_load(option_file.read_text())['network_g']
    network.pop('type')
    network['rgb_mean'] = tuple(network['rgb_mean'])
    return {**network, 'num_feat': REDUCED_WIDTH[name]}


PAPER_CONFIGS = [_paper_config(name, scale) for name in PAPER_MODELS for scale in (2, 3, 4)]
# Every tableau, each with another step function, at x2 / x3 / x4 / x8 in turn.
TABLEAU_CONFIGS = [{'scheme': name, 'g_variant': G_VARIANTS[i % len(G_VARIANTS)], 'num_block': 2 + i % 3,
                    'num_feat': 4, 'upscale': (2, 3, 4, 8)[i % 4]} for i, name in enumerate(BUTCHER_TABLEAUS)]


def _config_id(config: dict) -> str:
    return f'{config["scheme"]}-{config["g_variant"]}-{config["num_block"]}x{config["num_feat"]}-x{config["upscale"]}'


def _trained(config: dict) -> tuple[OISR, OISR]:
    """The network before and after three Adam steps on random data (every coefficient moves off its tableau)."""
    torch.manual_seed(0)
    net = OISR(**config)
    initial = copy.deepcopy(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    lq = torch.rand(2, 3, 6, 6)
    target = torch.rand(2, 3, 6 * config['upscale'], 6 * config['upscale'])
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(net(lq), target).backward()
        optimizer.step()
    return initial.eval(), net.eval()


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
@pytest.mark.parametrize('config', PAPER_CONFIGS + TABLEAU_CONFIGS, ids=_config_id)
def test_checkpoint_loads_through_spandrel(tmp_path, config, suffix, one_thread):
    initial, trained = _trained(config)
    path = tmp_path / f'net_g_latest{suffix}'
    # BasicSR's layout of an EMA run; spandrel picks params_ema.
    atomic_save({'params': initial.state_dict(), 'params_ema': trained.state_dict()}, path)

    descriptor = spandrel.ModelLoader().load_from_file(path)

    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.name == 'OISR' and isinstance(descriptor.model, OISR)
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == (config['upscale'], 3, 3)
    assert descriptor.size_requirements.none and descriptor.purpose == 'SR'
    detected = detect_options(descriptor.model.state_dict())
    assert detected['rgb_mean'] == pytest.approx(config.get('rgb_mean', (0.4488, 0.4371, 0.4040)))
    assert {key: detected[key] for key in config if key != 'rgb_mean'} == {
        key: value for key, value in config.items() if key != 'rgb_mean'}
    assert detected['img_range'] == 255
    lq = torch.rand(1, 3, 7, 9)
    with torch.inference_mode():
        expected = trained(lq)
    assert (descriptor.model(lq) - expected).abs().max() <= 1e-6
    assert (descriptor(lq) - expected.clamp(0, 1)).abs().max() <= 1e-6


def test_run_without_ema_saved_as_safetensors_names_the_paper_model(tmp_path):
    path = tmp_path / 'net_g_latest.safetensors'
    atomic_save({'params': build_paper_model('LF-s', 3).state_dict()}, path)  # one state dict: stored flat
    descriptor = spandrel.ModelLoader().load_from_file(path)
    assert descriptor.tags == ['OISR-LF-s', 'lf', 'G-v2', '64nf', '8nb'] and descriptor.scale == 3


def test_bare_state_dict_with_frozen_coefficients_and_unit_range():
    config = {'scheme': 'rk4', 'g_variant': 'edsr', 'num_block': 1, 'num_feat': 4, 'upscale': 2,
              'learnable_coefficients': False, 'img_range': 1.0, 'rgb_mean': (0.5, 0.4, 0.3)}
    net = OISR(**config).eval()
    descriptor = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
    detected = detect_options(net.state_dict())
    assert detected['img_range'] == 1.0 and detected['rgb_mean'] == pytest.approx((0.5, 0.4, 0.3))
    assert detected['scheme'] == 'rk4' and detected['g_variant'] == 'edsr'
    lq = torch.rand(1, 3, 5, 5)
    with torch.inference_mode():
        assert torch.equal(descriptor.model(lq), net(lq))


@pytest.mark.parametrize('arch', ['EDSR', 'RCAN', 'SwinIR'])
def test_other_basicsr_architectures_are_not_taken_for_oisr(arch):
    net = {'EDSR': lambda: EDSR(3, 3, num_feat=8, num_block=2, upscale=2),
           'RCAN': lambda: RCAN(3, 3, num_feat=8, num_group=2, num_block=2, squeeze_factor=4, upscale=2),
           'SwinIR': lambda: SwinIR(img_size=16, embed_dim=12, depths=(2, ), num_heads=(2, ), window_size=4,
                                    upscale=2, upsampler='pixelshuffle')}[arch]()
    state_dict = net.state_dict()
    assert not OISRArch().detect(state_dict)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        return  # spandrel has no architecture of that layout (BasicSR's EDSR); not OISR either
    assert descriptor.architecture.name != 'OISR'


@pytest.mark.parametrize('dtype,bound', [(torch.float16, 2e-3), (torch.bfloat16, 1.5e-2)])
def test_half_precision_support_it_claims(dtype, bound, one_thread):
    # Bounds on images in [0, 1]: half an 8-bit level for fp16 (11-bit significand), four for bf16 (8-bit).
    torch.manual_seed(0)
    net = OISR(num_feat=8, num_block=2, upscale=2, scheme='rk3', g_variant='v3').eval()
    descriptor = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
    assert descriptor.supports_half and descriptor.supports_bfloat16
    lq = torch.rand(1, 3, 12, 12)
    expected = descriptor(lq)
    result = descriptor.to(dtype)(lq.to(dtype))
    assert result.dtype == dtype and (result.float() - expected).abs().max() < bound
