"""Numerical ODE schemes as network blocks.

A residual network block ``x + G(x)`` is one explicit Euler step of
``dy/dt = f(y)`` with ``G = h * f``. OISR (He et al., CVPR 2019) replaces that
step by higher-order schemes. This module holds every scheme the package knows:

* the paper's three blocks (``lf``, ``rk2``, ``rk3``) with the authors' exact
  parameterisation, so the authors' checkpoints map onto them one to one;
* any explicit Runge-Kutta scheme given as a Butcher tableau
  (:data:`BUTCHER_TABLEAUS`), run by one stepping loop
  (:class:`RungeKuttaBlock`).

Every learnable scalar is a separate tensor of shape ``[1]`` named as in the
authors' code (``scale1`` ...) or after its tableau entry (``a21``, ``b1`` ...).

The paper's blocks are written for training speed: a scalar that multiplies a
step's output goes into the weight and bias of the step's last convolution
(:class:`StepFunction`), other scalar products are fused (``addcmul``), sums
are accumulated in place into tensors the block itself has just made, the
PReLUs compute their gradients with vectorised kernels (:class:`VectorizedPReLU`),
and under autocast the states stay in the autocast dtype. The values are those
of the equations up to floating-point rounding.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

G_VARIANTS = ('v1', 'v2', 'v3', 'edsr')
PAPER_SCHEMES = ('lf', 'rk2', 'rk3')
# ``paper``: PyTorch's default convolution init, as in the authors' code. ``near_identity``: the same draws, then
# the last convolution of every step function scaled by NEAR_IDENTITY_SCALE (see init_near_identity).
BLOCK_INITS = ('paper', 'near_identity')
NEAR_IDENTITY_SCALE = 0.1


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta scheme.

    Args:
        a: Row ``i`` holds the ``i`` weights of the earlier stages that form the
            input of stage ``i`` (so row 0 is empty).
        b: Weights of the stages in the output.
        order: Order of accuracy of the scheme.
    """

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int

    def __post_init__(self) -> None:
        if len(self.a) != len(self.b) or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError('Butcher tableau must be explicit: row i of a has i entries, one row per weight in b.')

    @property
    def num_stages(self) -> int:
        return len(self.b)


BUTCHER_TABLEAUS: dict[str, ButcherTableau] = {
    'euler': ButcherTableau(a=((), ), b=(1.0, ), order=1),
    'midpoint': ButcherTableau(a=((), (0.5, )), b=(0.0, 1.0), order=2),
    'heun': ButcherTableau(a=((), (1.0, )), b=(0.5, 0.5), order=2),
    'ralston': ButcherTableau(a=((), (2 / 3, )), b=(0.25, 0.75), order=2),
    'kutta3': ButcherTableau(a=((), (0.5, ), (-1.0, 2.0)), b=(1 / 6, 2 / 3, 1 / 6), order=3),
    'ssprk3': ButcherTableau(a=((), (1.0, ), (0.25, 0.25)), b=(1 / 6, 1 / 6, 2 / 3), order=3),
    'rk4': ButcherTableau(a=((), (0.5, ), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4),
    'rk38': ButcherTableau(a=((), (1 / 3, ), (-1 / 3, 1.0), (1.0, -1.0, 1.0)), b=(1 / 8, 3 / 8, 3 / 8, 1 / 8), order=4),
}

# The paper's blocks: number of step functions G per block and initial scalars.
_PAPER_STEPS = {'lf': 4, 'rk2': 2, 'rk3': 3}
SCHEMES = PAPER_SCHEMES + tuple(BUTCHER_TABLEAUS)


def steps_per_block(scheme: str) -> int:
    """Number of step functions G (each with its own weights) in one block."""
    check_choice('scheme', scheme, SCHEMES)
    if scheme in _PAPER_STEPS:
        return _PAPER_STEPS[scheme]
    return BUTCHER_TABLEAUS[scheme].num_stages


def convs_per_step(g_variant: str) -> int:
    """Number of 3x3 convolutions in one step function G."""
    check_choice('g_variant', g_variant, G_VARIANTS)
    return 2 if g_variant in ('v3', 'edsr') else 1


def check_choice(key: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming ``key`` when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f'{key}: {value!r} is not supported; choose one of {", ".join(map(str, allowed))}.')


class ScalableConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that can return its output times a tensor scalar ``scale`` (shape ``[1]``).

    ``conv(x, scale=s)`` convolves with ``s * weight`` and adds ``s * bias``:
    the value of ``s * conv(x)`` up to rounding, without a pass over the output
    forward, and backward the gradient of ``s`` is a sum over the weight and
    bias instead of a full-size product and reduction. Parameters and their
    names are those of ``nn.Conv2d``, and the module is called as usual, so
    forward hooks see it.
    """

    def forward(self, input: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        if scale is None:
            return super().forward(input)
        bias = None if self.bias is None else self.bias * scale
        return self._conv_forward(input, self.weight * scale, bias)


class _PReLUFunction(torch.autograd.Function):
    """Per-channel PReLU whose backward pass is made of vectorised elementwise kernels and one reduction."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        return F.prelu(input, weight)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        input, weight = ctx.saved_tensors
        # The gradient where input > 0 (ReLU's backward kernel) and the rest; both are new tensors of this
        # function, so they are reused in place: grad_input = positive + w * negative, and the weight
        # gradient is the per-channel sum of input * negative (zero where input > 0).
        positive = torch.ops.aten.threshold_backward(grad_output, input, 0)
        negative = grad_output - positive
        channel_shape = [1, -1] + [1] * (input.dim() - 2) if input.dim() >= 2 else [-1]
        grad_input = positive.addcmul_(weight.view(channel_shape).to(positive.dtype), negative)
        product = negative.mul_(input)
        if weight.numel() == 1:
            grad_weight = product.sum().reshape(1)
        else:
            grad_weight = product.sum([dim for dim in range(input.dim()) if dim != 1])
        return grad_input, grad_weight.to(weight.dtype)


class VectorizedPReLU(nn.PReLU):
    """``nn.PReLU`` (same parameter, same values) with a faster backward pass on the CPU.

    PyTorch's CPU PReLU backward is a scalar loop with two full-size outputs:
    on a 64-channel 48x48 feature map its forward and backward cost four times
    a ReLU's, and it was most of the gap between OISR's and EDSR's training
    steps. Built from vectorised kernels, forward and backward take half as
    long from 24x24 feature maps up (docs/benchmarks.md). On other devices, and
    without gradients (inference, export), it is ``nn.PReLU`` itself: a GPU
    runs PyTorch's backward as one fused kernel.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        needs_grad = input.requires_grad or self.weight.requires_grad
        if input.device.type == 'cpu' and needs_grad and torch.is_grad_enabled():
            return _PReLUFunction.apply(input, self.weight)
        return super().forward(input)


class StepFunction(nn.Sequential):
    """A step function G: its layers in order, like ``nn.Sequential`` (same parameter names).

    ``G(y, scale=s)`` is ``s * G(y)``; when the last layer is a
    :class:`ScalableConv2d` the scalar goes into its weight and bias. The
    result is always a new tensor that nothing else refers to, so a block may
    add to it in place.
    """

    def forward(self, input: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        if scale is None:
            return super().forward(input)
        *layers, last = self
        for layer in layers:
            input = layer(input)
        if isinstance(last, ScalableConv2d):
            return last(input, scale=scale)
        return _times(scale, last(input))


def _like(scalar: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """A block scalar in ``tensor``'s dtype.

    A ``[1]`` fp32 tensor times a bf16 / fp16 one gives fp32; cast, the ODE states stay in the autocast dtype,
    as the residual stream of BasicSR's EDSR does (its ``res_scale`` is a Python float). In-place updates
    (``addcmul_``) keep their tensor's dtype without it.
    """
    return scalar if scalar.dtype == tensor.dtype else scalar.to(tensor.dtype)


def _times(scalar: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """``scalar * tensor`` in ``tensor``'s dtype."""
    return _like(scalar, tensor) * tensor


def _scaled_step(step: nn.Module, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``scale * step(y)`` as a new tensor that the caller may modify in place."""
    if isinstance(step, StepFunction):
        return step(y, scale=scale)
    return _times(scale, step(y))


def make_step_function(g_variant: str, num_feat: int) -> StepFunction:
    """Build one step function G (paper Fig. 3).

    Args:
        g_variant: ``v1`` Conv-PReLU, ``v2`` PReLU-Conv, ``v3`` (PReLU-Conv) x 2,
            ``edsr`` Conv-ReLU-Conv (EDSR's residual branch).
        num_feat: Channel number; every PReLU is per-channel with init 0.25.
    """
    check_choice('g_variant', g_variant, G_VARIANTS)

    def conv() -> nn.Conv2d:
        return ScalableConv2d(num_feat, num_feat, 3, 1, 1)

    def prelu() -> nn.PReLU:
        return VectorizedPReLU(num_feat, init=0.25)

    layers = {
        'v1': lambda: [conv(), prelu()],
        'v2': lambda: [prelu(), conv()],
        'v3': lambda: [prelu(), conv(), prelu(), conv()],
        'edsr': lambda: [conv(), nn.ReLU(inplace=True), conv()],
    }[g_variant]()
    return StepFunction(*layers)


def _register_scalars(module: nn.Module, values: dict[str, float], learnable: bool) -> None:
    for name, value in values.items():
        tensor = torch.tensor([float(value)])
        if learnable:
            module.register_parameter(name, nn.Parameter(tensor))
        else:
            module.register_buffer(name, tensor)


class LeapfrogBlock(nn.Module):
    """Leapfrog block (paper eq. 8-10): ``y_{n+1} = y_{n-1} + s_n * G_n(y_n)``.

    Starts from ``y_{-1} = 0`` and ``y_0 = x``; with four steps this is the
    paper's LF block: ``y1 = s1*G1(x); y2 = x + s2*G2(y1); y3 = y1 + s3*G3(y2);
    out = y2 + s4*G4(y3)``, every ``s`` initialised to 2.

    Args:
        step_functions: The step functions G, one per leapfrog step.
        learnable_coefficients: Train the scalars ``scale1`` ... Default: True.
    """

    def __init__(self, step_functions: list[nn.Module], learnable_coefficients: bool = True):
        super().__init__()
        self.steps = nn.ModuleList(step_functions)
        self._scale_names = [f'scale{i + 1}' for i in range(len(self.steps))]
        _register_scalars(self, {name: 2.0 for name in self._scale_names}, learnable_coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous, current = None, x
        for step, name in zip(self.steps, self._scale_names, strict=True):
            update = _scaled_step(step, getattr(self, name), current)
            previous, current = current, update if previous is None else update.add_(previous)
        return current


class HeunBlock(nn.Module):
    """OISR's RK2 block (Heun, paper eq. 12-14): ``x + s1*(k1 + G2(x + k1))``, ``k1 = G1(x)``.

    Args:
        step_functions: ``[G1, G2]``.
        learnable_coefficients: Train ``scale1`` (init 0.5). Default: True.
    """

    def __init__(self, step_functions: list[nn.Module], learnable_coefficients: bool = True):
        super().__init__()
        self.steps = nn.ModuleList(step_functions)
        _register_scalars(self, {'scale1': 0.5}, learnable_coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k1 = self.steps[0](x)
        # x + s1*k1 + s1*G2(x + k1), the last product folded into G2.
        return _scaled_step(self.steps[1], self.scale1, x + k1).add_(x).addcmul_(self.scale1, k1)


class KuttaBlock(nn.Module):
    """OISR's RK3 block (Kutta's third-order scheme, paper eq. 18-21).

    ``k1 = G1(x); k2 = G2(x + s1*k1); k3 = G3(x + s2*k2 + s3*k1);
    out = x + s5*(k1 + s4*k2 + k3)`` with ``s`` initialised to
    0.5, 2, -1, 4, 1/6.

    Args:
        step_functions: ``[G1, G2, G3]``.
        learnable_coefficients: Train ``scale1`` ... ``scale5``. Default: True.
    """

    def __init__(self, step_functions: list[nn.Module], learnable_coefficients: bool = True):
        super().__init__()
        self.steps = nn.ModuleList(step_functions)
        initial = {'scale1': 0.5, 'scale2': 2.0, 'scale3': -1.0, 'scale4': 4.0, 'scale5': 1 / 6}
        _register_scalars(self, initial, learnable_coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, s2, s3, s4, s5 = self.scale1, self.scale2, self.scale3, self.scale4, self.scale5
        k1 = self.steps[0](x)
        k2 = self.steps[1](torch.addcmul(x, _like(s1, x), k1))
        # x + s5*k1 + s5*s4*k2 + s5*k3, the product s5*k3 folded into G3.
        out = _scaled_step(self.steps[2], s5, torch.addcmul(x, _like(s3, x), k1).addcmul_(s2, k2))
        return out.add_(x).addcmul_(s5, k1).addcmul_(s5 * s4, k2)


class RungeKuttaBlock(nn.Module):
    """One step of any explicit Runge-Kutta scheme, G playing ``h * f``.

    ``k_i = G_i(x + sum_j a_ij k_j)``, ``out = x + sum_i b_i k_i``. The non-zero
    entries of the tableau become scalars ``a{i}{j}`` and ``b{i}`` (1-based),
    initialised from the tableau; zero entries stay zero so the block keeps the
    scheme's structure and cost.

    Args:
        tableau: The scheme.
        step_functions: One G per stage.
        learnable_coefficients: Train the tableau entries. Default: True.
    """

    def __init__(self,
                 tableau: ButcherTableau,
                 step_functions: list[nn.Module],
                 learnable_coefficients: bool = True):
        super().__init__()
        if len(step_functions) != tableau.num_stages:
            raise ValueError(f'The tableau has {tableau.num_stages} stages but {len(step_functions)} '
                             'step functions were given.')
        self.steps = nn.ModuleList(step_functions)
        coefficients = {}
        self._stage_terms: list[list[tuple[int, str]]] = []
        for i, row in enumerate(tableau.a):
            terms = [(j, f'a{i + 1}{j + 1}') for j, value in enumerate(row) if value != 0]
            coefficients.update({name: row[j] for j, name in terms})
            self._stage_terms.append(terms)
        self._output_terms = [(i, f'b{i + 1}') for i, value in enumerate(tableau.b) if value != 0]
        coefficients.update({name: tableau.b[i] for i, name in self._output_terms})
        _register_scalars(self, coefficients, learnable_coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages: list[torch.Tensor] = []
        for step, terms in zip(self.steps, self._stage_terms, strict=True):
            stage_input = x
            for j, name in terms:
                stage_input = torch.addcmul(stage_input, _like(getattr(self, name), x), stages[j])
            stages.append(step(stage_input))
        out = x
        for i, name in self._output_terms:
            out = torch.addcmul(out, _like(getattr(self, name), x), stages[i])
        return out


def init_near_identity(block: nn.Module, scale: float = NEAR_IDENTITY_SCALE) -> None:
    """Scale the weight and bias of the last convolution of every step function of ``block`` by ``scale``.

    Every G then returns ``scale`` times its paper-init value (a PReLU after the
    convolution, G-v1, is positively homogeneous), so each scheme starts as a
    small perturbation of the identity, as BasicSR's residual blocks do with
    ``default_init_weights(scale=0.1)``. The step sizes keep the paper's values
    and no parameter is added, removed or reshaped.
    """
    for step in block.steps:
        last_conv = [layer for layer in step if isinstance(layer, nn.Conv2d)][-1]
        with torch.no_grad():
            last_conv.weight.mul_(scale)
            if last_conv.bias is not None:
                last_conv.bias.mul_(scale)


def make_ode_block(scheme: str,
                   step_functions: list[nn.Module],
                   learnable_coefficients: bool = True) -> nn.Module:
    """The one factory for blocks: ``scheme`` is a paper scheme or a tableau name.

    Args:
        scheme: ``lf``, ``rk2``, ``rk3`` (the paper's blocks) or a key of
            :data:`BUTCHER_TABLEAUS`.
        step_functions: ``steps_per_block(scheme)`` step functions G.
        learnable_coefficients: Train the block's scalars. Default: True.
    """
    expected = steps_per_block(scheme)
    if len(step_functions) != expected:
        raise ValueError(f'scheme {scheme!r} needs {expected} step functions, got {len(step_functions)}.')
    if scheme == 'lf':
        return LeapfrogBlock(step_functions, learnable_coefficients)
    if scheme == 'rk2':
        return HeunBlock(step_functions, learnable_coefficients)
    if scheme == 'rk3':
        return KuttaBlock(step_functions, learnable_coefficients)
    return RungeKuttaBlock(BUTCHER_TABLEAUS[scheme], step_functions, learnable_coefficients)
