"""Parameter and MAC counts of any network, computed on the meta device (no memory, no compute)."""

import math
from copy import deepcopy

import torch
from basicsr.archs import build_network
from torch import nn

_COUNTED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
# The HR output (height, width) MACs are reported for: 720p, as in the OISR and EDSR papers.
MACS_OUTPUT_SIZE = (720, 1280)


def count_parameters(net: nn.Module) -> dict[str, int]:
    """All parameters, and those of convolutions alone (weights and biases)."""
    conv = sum(p.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
               for p in m.parameters(recurse=False))
    return {'params': sum(p.numel() for p in net.parameters()), 'conv_params': conv}


def count_macs(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the convolution and linear layers for one input.

    Each layer costs its weight count times the number of output positions (the
    convention of the OISR and EDSR papers); biases, activations, attention
    products and element-wise operations are not counted.
    """
    macs = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Linear):
            positions = output.numel() // output.shape[-1]
        else:
            positions = output.shape[0] * output.shape[-2] * output.shape[-1]
        macs += module.weight.numel() * positions

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, _COUNTED_LAYERS)]
    try:
        device = next(net.parameters()).device
        with torch.no_grad():
            net(torch.empty(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def network_complexity(network_opt: dict, scale: int,
                       output_size: tuple[int, int] = MACS_OUTPUT_SIZE) -> dict[str, int]:
    """Parameters and MACs of a BasicSR ``network_g`` option dict for an HR output of ``output_size``.

    The network is built on the meta device, so even the 42M-parameter
    OISR-RK3 costs neither memory nor time; an architecture whose constructor
    needs real values (SwinIR calls ``.item()``) is built on the CPU and then
    moved there. A non-integer LR size is rounded up.
    """
    try:
        with torch.device('meta'):
            net = build_network(deepcopy(network_opt))
    except (RuntimeError, NotImplementedError):
        net = build_network(deepcopy(network_opt)).to('meta')
    num_in_ch = network_opt.get('num_in_ch', 3)
    input_shape = (1, num_in_ch, *(math.ceil(size / scale) for size in output_size))
    return {**count_parameters(net), 'macs': count_macs(net, input_shape)}
