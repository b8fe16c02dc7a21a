import torch
from basicsr.archs.arch_util import Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from .ode_schemes import (
    BLOCK_INITS,
    G_VARIANTS,
    SCHEMES,
    check_choice,
    init_near_identity,
    make_ode_block,
    make_step_function,
    steps_per_block,
)

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

# The paper's models (Table 2 / 3): the same structure at every scale.
PAPER_MODELS: dict[str, dict] = {
    'LF-s': dict(scheme='lf', g_variant='v2', num_block=8, num_feat=64),
    'RK2-s': dict(scheme='rk2', g_variant='v3', num_block=8, num_feat=64),
    'LF': dict(scheme='lf', g_variant='v2', num_block=8, num_feat=122),
    'RK2': dict(scheme='rk2', g_variant='v3', num_block=8, num_feat=122),
    'RK3': dict(scheme='rk3', g_variant='v2', num_block=22, num_feat=256),
}


class MeanShift(nn.Module):
    """Fixed per-pixel affine colour map ``y = W x + b`` (a frozen 1x1 conv).

    It subtracts or adds the dataset mean. ``W`` and ``b`` are buffers, not
    parameters: they are saved and loaded with the network (the authors' own
    checkpoints carry drifted values of this layer) but never trained.

    Args:
        rgb_mean: Mean per channel, in [0, 1].
        img_range: Scale of the pixel values the layer sees.
        sign: -1 subtracts the mean, +1 adds it.
    """

    def __init__(self, rgb_mean: tuple[float, ...], img_range: float, sign: int):
        super().__init__()
        num_ch = len(rgb_mean)
        self.register_buffer('weight', torch.eye(num_ch).view(num_ch, num_ch, 1, 1))
        self.register_buffer('bias', sign * img_range * torch.tensor(rgb_mean, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


def _check_upscale(upscale: int) -> None:
    if not isinstance(upscale, int) or not (upscale == 3 or (upscale >= 2 and upscale & (upscale - 1) == 0)):
        raise ValueError(f'upscale: {upscale!r} is not supported; choose 2, 3, 4 or another power of 2.')


class OISRBody(nn.Module):
    """The trunk of OISR: ``num_block`` ODE blocks, a 3x3 conv and the long skip.

    Args:
        num_feat: Channel number of the features.
        num_block: Number of ODE blocks.
        scheme: Block scheme, one of :data:`~oisr_basicsr.archs.ode_schemes.SCHEMES`.
        g_variant: Step function G: ``v1``, ``v2``, ``v3`` or ``edsr``.
        learnable_coefficients: Train the blocks' scalars. Default: True.
        block_init: ``paper`` (PyTorch's default init, as the authors' code) or
            ``near_identity`` (each step function's last convolution scaled by
            0.1, so every block starts close to the identity). Default: ``paper``.
    """

    def __init__(self,
                 num_feat: int,
                 num_block: int,
                 scheme: str,
                 g_variant: str,
                 learnable_coefficients: bool = True,
                 block_init: str = 'paper'):
        super().__init__()
        check_choice('scheme', scheme, SCHEMES)
        check_choice('g_variant', g_variant, G_VARIANTS)
        check_choice('block_init', block_init, BLOCK_INITS)
        if not isinstance(num_block, int) or num_block < 1:
            raise ValueError(f'num_block: {num_block!r} must be a positive integer.')
        if not isinstance(num_feat, int) or num_feat < 1:
            raise ValueError(f'num_feat: {num_feat!r} must be a positive integer.')
        num_steps = steps_per_block(scheme)
        self.blocks = nn.Sequential(*[
            make_ode_block(scheme, [make_step_function(g_variant, num_feat) for _ in range(num_steps)],
                           learnable_coefficients) for _ in range(num_block)
        ])
        if block_init == 'near_identity':
            for block in self.blocks:
                init_near_identity(block)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_after_body(self.blocks(x)).add_(x)


@ARCH_REGISTRY.register()
class OISR(nn.Module):
    """OISR network (He et al., "ODE-inspired Network Design for Single Image
    Super-Resolution", CVPR 2019).

    EDSR's skeleton (mean shift, head conv, body with long skip, pixel-shuffle
    upsampler, tail conv) whose residual blocks are numerical ODE schemes.
    Argument names follow BasicSR's EDSR. The paper's models are in
    :data:`PAPER_MODELS`; e.g. OISR-RK3 is ``scheme='rk3', g_variant='v2',
    num_block=22, num_feat=256``.

    Args:
        num_in_ch: Channel number of inputs. Default: 3.
        num_out_ch: Channel number of outputs. Default: 3.
        num_feat: Channel number of intermediate features. Default: 64.
        num_block: Number of ODE blocks in the body. Default: 8.
        upscale: Upsampling factor: 2, 3, 4 or another power of 2. Default: 4.
        scheme: ``lf``, ``rk2``, ``rk3`` (the paper's blocks) or a Butcher
            tableau name: ``euler`` (EDSR's residual block), ``midpoint``,
            ``heun``, ``ralston``, ``kutta3``, ``ssprk3``, ``rk4``, ``rk38``.
            Default: ``lf``.
        g_variant: Step function G: ``v1`` Conv-PReLU, ``v2`` PReLU-Conv,
            ``v3`` (PReLU-Conv) x 2, ``edsr`` Conv-ReLU-Conv. Default: ``v2``.
        learnable_coefficients: Train the blocks' scalars (step sizes, tableau
            entries). Default: True.
        block_init: ``paper``: PyTorch's default convolution init, as in the
            authors' code. ``near_identity``: the same, with the last
            convolution of every step function scaled by 0.1 so that each
            block starts near the identity; same parameters, names and shapes.
            Default: ``paper``.
        img_range: Image range. Default: 255.
        rgb_mean: Image mean in RGB order. Default: DIV2K's mean.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 num_block: int = 8,
                 upscale: int = 4,
                 scheme: str = 'lf',
                 g_variant: str = 'v2',
                 learnable_coefficients: bool = True,
                 block_init: str = 'paper',
                 img_range: float = 255.,
                 rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN):
        super().__init__()
        _check_upscale(upscale)
        if not len(rgb_mean) == num_in_ch == num_out_ch:
            raise ValueError(f'rgb_mean: {len(rgb_mean)} values given, but num_in_ch is {num_in_ch} and '
                             f'num_out_ch is {num_out_ch}; all three must agree.')
        self.img_range = img_range
        self.sub_mean = MeanShift(rgb_mean, img_range, sign=-1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = OISRBody(num_feat, num_block, scheme, g_variant, learnable_coefficients, block_init)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.add_mean = MeanShift(rgb_mean, img_range, sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first(self.sub_mean(x * self.img_range))
        x = self.conv_last(self.upsample(self.body(x)))
        return self.add_mean(x) / self.img_range


def build_paper_model(name: str, upscale: int, **kwargs) -> OISR:
    """Build one of the paper's models by its name in :data:`PAPER_MODELS`."""
    check_choice('model', name, tuple(PAPER_MODELS))
    return OISR(upscale=upscale, **PAPER_MODELS[name], **kwargs)
