"""The time input shared by the NODE-SR dynamics networks.

NODE-SR (Park and Kim) feeds the scale factor ``t`` to the dynamics ``f(I, t)``
as a fourth input channel filled with ``t``; this is the only change the paper
makes to a backbone besides removing its upsampler.
"""

import torch
from torch import nn


def append_time_plane(x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Concatenate a constant plane holding each sample's time ``t`` to ``x`` as its last channel.

    Args:
        x: ``N x C x H x W`` batch.
        t: The time of each sample, an ``N``-tensor, or one number (or 0-d tensor) for the whole batch.

    Returns:
        ``N x (C + 1) x H x W`` tensor in ``x``'s dtype and device.
    """
    if x.ndim != 4:
        raise ValueError(f'x must be an NxCxHxW batch, got shape {tuple(x.shape)}')
    n, _, h, w = x.shape
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n, ):
        raise ValueError(f't must be one number or hold one time per sample ({n}), got shape {tuple(t.shape)}')
    return torch.cat([x, t.view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def zero_init(conv: nn.Conv2d) -> None:
    """Zero a convolution's weight and bias.

    Used on the last layer of every NODE-SR dynamics network: ``f = 0`` at
    initialisation, so an untrained model returns its initial condition, the
    bicubic upscale ``I(t0)``, and training starts from the bicubic baseline
    instead of adding random noise to it. The layer still receives gradients
    (its input features are not zero), so the whole network trains from the
    first update on.

    Args:
        conv: The layer to zero, in place.
    """
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
