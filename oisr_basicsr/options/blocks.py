"""The option blocks a model reads: ``acceleration:`` (every AcceleratedSRModel) and ``ode:`` (NODESRModel).

They are parsed here, below the models, so that checking an option file never imports a model; the models
read the parsed options from here.
"""

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch

from ..archs.ode_schemes import check_choice
from ..precisions import PRECISIONS

_Options = TypeVar('_Options')


def check_block(name: str, block: object, keys: tuple[str, ...]) -> Mapping:
    """An option block such as ``ode:`` as a mapping (``{}`` for None, i.e. all defaults).

    Raises:
        ValueError: if it is not a mapping, or naming its first key that is not in ``keys``.
    """
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ValueError(f'{name}: must be a mapping with keys {", ".join(keys)}; got {block!r}.')
    unknown = [key for key in block if key not in keys]
    if unknown:
        raise ValueError(f'{name}.{unknown[0]} is not an option; the keys are: {", ".join(keys)}.')
    return block


def parse_block(name: str, block: object, keys: tuple[str, ...], options: Callable[..., _Options]) -> _Options:
    """Validate an option block such as ``ode:``: its keys here, its values by ``options``.

    Args:
        name: The block's key in the option file.
        block: The block as parsed from YAML, or None for the defaults.
        keys: The keys the block may have.
        options: Builds the options from the block's keys as keyword arguments, checking their values.

    Returns:
        The options.

    Raises:
        ValueError: naming the offending ``<name>.<key>`` and what it allows.
    """
    return options(**check_block(name, block, keys))


COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
ACCELERATION_KEYS = ('precision', 'channels_last', 'compile')


@dataclass(frozen=True)
class AccelerationOptions:
    """The ``acceleration:`` block of an option file; every switch is off by default.

    Args:
        precision: ``fp32`` (BasicSR's behaviour), ``bf16`` or ``fp16``: autocast for the network's
            forward passes in training and validation. ``fp16`` trains with a gradient scaler, whose
            state is saved in and resumed from the training states. Default: ``fp32``.
        channels_last: Keep the weights and the input batches in the NHWC memory format, which
            cuDNN and oneDNN convolutions run fastest on. Default: False.
        compile: ``torch.compile`` the networks (``net_g`` and its EMA copy) in place: True for the
            default mode, or a mode name (:data:`COMPILE_MODES`). Checkpoints keep their keys. The
            first iterations are slow while the graphs compile. Default: False.
    """

    precision: str = 'fp32'
    channels_last: bool = False
    compile: bool | str = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f'acceleration.precision: {self.precision!r} is not supported; choose one of '
                             f'{", ".join(PRECISIONS)}.')
        if not isinstance(self.channels_last, bool):
            raise ValueError(f'acceleration.channels_last: {self.channels_last!r} must be true or false.')
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise ValueError(f'acceleration.compile: {self.compile!r} is not supported; choose true, false or a '
                             f'mode: {", ".join(COMPILE_MODES)}.')

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32."""
        return PRECISIONS[self.precision]

    def autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        """Autocast at this precision on ``device_type`` (``cpu``, ``cuda``); a no-op for fp32."""
        dtype = self.autocast_dtype
        return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)

    @property
    def compile_mode(self) -> str | None:
        """The ``torch.compile`` mode, or None when not compiling."""
        if self.compile is True:
            return 'default'
        return self.compile or None


def parse_acceleration_options(opt: Mapping | None) -> AccelerationOptions:
    """Validate the ``acceleration:`` block of an option file (None: the defaults); see :func:`parse_block`."""
    return parse_block('acceleration', opt, ACCELERATION_KEYS, AccelerationOptions)


# torchdiffeq 0.2.5's solvers that step on the given grid (one call of the grid per step) ...
FIXED_STEP_SOLVERS = ('euler', 'midpoint', 'heun2', 'heun3', 'rk4', 'explicit_adams', 'implicit_adams',
                      'fixed_adams')
# ... and those that choose their own steps from rtol / atol.
ADAPTIVE_SOLVERS = ('dopri5', 'dopri8', 'bosh3', 'fehlberg2', 'adaptive_heun')
SOLVERS = FIXED_STEP_SOLVERS + ADAPTIVE_SOLVERS
GRADIENT_MODES = ('backprop', 'adjoint', 'checkpoint')
ODE_KEYS = ('solver', 'num_steps', 'step_size', 'rtol', 'atol', 'gradient')

# A sample whose t0 is this close to 1 is already at the target: it needs no solve.
T_EQUALS_ONE = 1e-6


@dataclass(frozen=True)
class ODEOptions:
    """How to solve the NODE-SR ODE; the ``ode:`` block of an option file.

    Args:
        solver: A torchdiffeq method, one of :data:`SOLVERS`. Default: ``rk4`` (the paper's).
        num_steps: Fixed-step solvers: uniform steps from every ``t0`` to 1, whatever ``t0``.
            Default (when ``step_size`` is not given either): 1, which is what torchdiffeq does on
            the grid ``[t0, 1]`` that the paper's ``ODESolve(I(t), f, [t, 1])`` describes.
        step_size: Fixed-step solvers, instead of ``num_steps``: the largest step in ``t``; a
            sample takes ``ceil((t0 - 1) / step_size)`` uniform steps. This is an explicit step
            count, not torchdiffeq's ``step_size`` option, whose float rounding adds a near-zero
            extra step for some ``t0``.
        rtol: Adaptive solvers: relative tolerance. Default: 1e-3 (torchdiffeq's 1e-7 is far
            tighter than 8-bit images need).
        atol: Adaptive solvers: absolute tolerance, in [0, 1] image units. Default: 1e-4.
        gradient: ``backprop`` through every solver stage (memory grows with the number of
            function evaluations), ``adjoint`` (torchdiffeq's ``odeint_adjoint``: memory independent
            of the number of steps, gradients of the continuous adjoint, so close to but not equal
            to those of the discretisation) or ``checkpoint`` (exact gradients; every evaluation of
            ``f`` keeps only its input and recomputes its activations in the backward pass).
            Default: ``backprop``.
    """

    solver: str = 'rk4'
    num_steps: int | None = None
    step_size: float | None = None
    rtol: float = 1e-3
    atol: float = 1e-4
    gradient: str = 'backprop'

    def __post_init__(self) -> None:
        check_choice('ode.solver', self.solver, SOLVERS)
        check_choice('ode.gradient', self.gradient, GRADIENT_MODES)
        if self.num_steps is not None and (isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int)
                                           or self.num_steps < 1):
            raise ValueError(f'ode.num_steps: {self.num_steps!r} must be a positive integer.')
        for key in ('step_size', 'rtol', 'atol'):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f'ode.{key}: {value!r} must be a positive number.')
        if self.num_steps is not None and self.step_size is not None:
            raise ValueError('ode.num_steps and ode.step_size are both given; give one of them.')
        if self.adaptive and (self.num_steps is not None or self.step_size is not None):
            key = 'num_steps' if self.num_steps is not None else 'step_size'
            raise ValueError(f'ode.{key} is for the fixed-step solvers ({", ".join(FIXED_STEP_SOLVERS)}); '
                             f'solver {self.solver} chooses its own steps from ode.rtol and ode.atol.')

    @property
    def adaptive(self) -> bool:
        """Whether the solver chooses its own steps."""
        return self.solver in ADAPTIVE_SOLVERS

    def steps_for(self, t0: float) -> int:
        """Number of fixed steps from ``t0`` to 1 (0 when ``t0`` is 1); for adaptive solvers 1 means 'solve'."""
        if t0 - 1 < T_EQUALS_ONE:
            return 0
        if self.adaptive:
            return 1
        if self.step_size is None:
            return self.num_steps or 1
        # Rounding first keeps float32 scales such as 1.1 (1.10000002) from gaining a step.
        return max(1, math.ceil(round((t0 - 1) / self.step_size, 6)))


def parse_ode_options(opt: Mapping | None) -> ODEOptions:
    """Validate the ``ode:`` block of an option file (None: the defaults); see :func:`parse_block`."""
    return parse_block('ode', opt, ODE_KEYS, _ode_options)


def _ode_options(**block: object) -> ODEOptions:
    # rtol / atol given with a fixed-step solver would be ignored silently; ODEOptions cannot tell them from its
    # defaults, so they are refused here, where the given keys are known.
    fixed_only = [key for key in ('rtol', 'atol') if key in block and block.get('solver', 'rk4') in FIXED_STEP_SOLVERS]
    if fixed_only:
        raise ValueError(f'ode.{fixed_only[0]} is for the adaptive solvers ({", ".join(ADAPTIVE_SOLVERS)}); '
                         f'solver {block.get("solver", "rk4")} takes ode.num_steps or ode.step_size.')
    return ODEOptions(**{key: _yaml_float(value) if key in ('step_size', 'rtol', 'atol') else value
                         for key, value in block.items()})


def _yaml_float(value: object) -> object:
    """YAML reads ``1e-3`` (no dot) as a string; take it as the number it was meant to be."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


