import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .oisr_arch import OISRBody
from .time_plane import append_time_plane, zero_init


@ARCH_REGISTRY.register()
class NODEOISR(nn.Module):
    """The OISR trunk as the dynamics ``f(I, t)`` of NODE-SR ("NODE-OISR").

    Head conv(in + 1 -> F) over the image and the time plane, the OISR body
    (:class:`~oisr_basicsr.archs.oisr_arch.OISRBody`: ODE-scheme blocks with
    the long skip) and a tail conv(F -> out), all at the input's resolution:
    OISR's discretised ODE blocks inside NODE-SR's continuous ODE. No mean
    shift: ``f`` outputs a derivative, whose mean is not the image mean. The
    tail conv starts at zero (see :func:`~oisr_basicsr.archs.time_plane.zero_init`).

    Args:
        num_in_ch: Channel number of the image. Default: 3.
        num_out_ch: Channel number of the output. Default: 3.
        num_feat: Channel number of the features (F). Default: 64.
        num_block: Number of ODE blocks in the body. Default: 8.
        scheme: Block scheme, any of :data:`~oisr_basicsr.archs.ode_schemes.SCHEMES`. Default: ``lf``.
        g_variant: Step function G: ``v1``, ``v2``, ``v3`` or ``edsr``. Default: ``v2``.
        learnable_coefficients: Train the blocks' scalars. Default: True.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 num_block: int = 8,
                 scheme: str = 'lf',
                 g_variant: str = 'v2',
                 learnable_coefficients: bool = True):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch + 1, num_feat, 3, 1, 1)
        self.body = OISRBody(num_feat, num_block, scheme, g_variant, learnable_coefficients)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        zero_init(self.conv_last)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Evaluate ``f(x, t)``: an ``N x num_out_ch x H x W`` tensor for an ``N x num_in_ch x H x W`` ``x``."""
        return self.conv_last(self.body(self.conv_first(append_time_plane(x, t))))
