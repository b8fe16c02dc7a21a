import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .time_plane import append_time_plane, zero_init


class ResidualDenseBlock(nn.Module):
    """RDN's residual dense block: ``num_layer`` densely connected conv+ReLU, 1x1 local fusion, local skip.

    Args:
        num_feat: Channel number of the block's input and output (G0).
        growth: Channels each conv adds to the dense concatenation (G).
        num_layer: Number of conv+ReLU layers (C).
    """

    def __init__(self, num_feat: int, growth: int, num_layer: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat + i * growth, growth, 3, 1, 1), nn.ReLU(inplace=True))
            for i in range(num_layer))
        self.fusion = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs:
            features.append(conv(torch.cat(features, dim=1)))
        return self.fusion(torch.cat(features, dim=1)) + x


@ARCH_REGISTRY.register()
class NODERDN(nn.Module):
    """RDN (Zhang et al., CVPR 2018) without its upsampler, as the dynamics ``f(I, t)`` of NODE-SR.

    Shallow feature extraction (two 3x3 convs, the first taking the image plus
    the time plane), ``num_block`` residual dense blocks, global feature fusion
    (1x1 then 3x3 conv over the concatenated block outputs) with the global
    skip from the first conv, and a 3x3 conv to ``num_out_ch`` channels in
    place of the upsampler, so the output has the input's size. The last conv
    starts at zero (see :func:`~oisr_basicsr.archs.time_plane.zero_init`).

    Args:
        num_in_ch: Channel number of the image. Default: 3.
        num_out_ch: Channel number of the output. Default: 3.
        num_feat: G0, channels between blocks. Default: 64.
        growth: G, growth rate inside a block. Default: 64.
        num_block: D, number of residual dense blocks. Default: 16.
        num_layer: C, conv layers per block. Default: 8.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 growth: int = 64,
                 num_block: int = 16,
                 num_layer: int = 8):
        super().__init__()
        for key, value in (('num_feat', num_feat), ('growth', growth), ('num_block', num_block),
                           ('num_layer', num_layer)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{key}: {value!r} must be a positive integer.')
        self.conv_first = nn.Conv2d(num_in_ch + 1, num_feat, 3, 1, 1)
        self.conv_second = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.blocks = nn.ModuleList(ResidualDenseBlock(num_feat, growth, num_layer) for _ in range(num_block))
        self.global_fusion = nn.Sequential(
            nn.Conv2d(num_block * num_feat, num_feat, 1), nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        zero_init(self.conv_last)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Evaluate ``f(x, t)``: an ``N x num_out_ch x H x W`` tensor for an ``N x num_in_ch x H x W`` ``x``."""
        shallow = self.conv_first(append_time_plane(x, t))
        feat = self.conv_second(shallow)
        block_outputs = []
        for block in self.blocks:
            feat = block(feat)
            block_outputs.append(feat)
        return self.conv_last(self.global_fusion(torch.cat(block_outputs, dim=1)) + shallow)
