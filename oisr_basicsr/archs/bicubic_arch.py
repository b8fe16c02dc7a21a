import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..data.resize import imresize_tensor


@ARCH_REGISTRY.register()
class Bicubic(nn.Module):
    """MATLAB-style bicubic upsampling as a network without parameters.

    Run through the same test pipeline as a trained model, it gives the bicubic
    row of every comparison table.

    Args:
        upscale: Upsampling factor.
    """

    def __init__(self, upscale: int = 4):
        super().__init__()
        if not isinstance(upscale, (int, float)) or upscale <= 1:
            raise ValueError(f'upscale: {upscale!r} must be a number greater than 1.')
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize_tensor(x, self.upscale)
