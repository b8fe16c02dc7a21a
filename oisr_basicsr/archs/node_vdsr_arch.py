import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .time_plane import append_time_plane, zero_init


@ARCH_REGISTRY.register()
class NODEVDSR(nn.Module):
    """VDSR (Kim et al., CVPR 2016) as the dynamics ``f(I, t)`` of NODE-SR.

    ``num_layer`` 3x3 convolutions: conv(in + 1 -> F) + ReLU, ``num_layer - 2``
    x [conv(F -> F) + ReLU], conv(F -> out). The extra input channel is the
    constant time plane. VDSR's global residual is dropped: ``f`` is the time
    derivative of the image, not the image, and the ODE solver adds it.
    The last conv starts at zero (see :func:`~oisr_basicsr.archs.time_plane.zero_init`).

    Args:
        num_in_ch: Channel number of the image. Default: 3.
        num_out_ch: Channel number of the output. Default: 3.
        num_feat: Channel number of the hidden layers. Default: 64 (the paper's).
        num_layer: Number of conv layers, first and last included, at least 2. Default: 20 (the paper's).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_layer: int = 20):
        super().__init__()
        if not isinstance(num_layer, int) or num_layer < 2:
            raise ValueError(f'num_layer: {num_layer!r} must be an integer of at least 2.')
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch + 1, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layer - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        zero_init(self.conv_last)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Evaluate ``f(x, t)``: an ``N x num_out_ch x H x W`` tensor for an ``N x num_in_ch x H x W`` ``x``."""
        return self.conv_last(self.body(append_time_plane(x, t)))
