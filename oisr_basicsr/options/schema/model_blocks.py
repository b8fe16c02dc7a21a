"""The blocks this package's models read: ``acceleration:`` (every AcceleratedSRModel) and ``ode:`` (NODESRModel).

They are typed here, below the models, so that checking an option file never imports a model; the models, the
inference and the tools read their settings as these typed objects (:func:`parse_acceleration_options`,
:func:`parse_ode_options`).
"""

import contextlib
import math
from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import ConfigDict, Field, model_validator

from ...precisions import PRECISIONS
from .base import Block
from .messages import validate_block
from .values import Bool, PositiveFloat, PositiveInt, rule_error

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


class AccelerationOptions(Block):
    """``acceleration``: autocast, memory format and compilation of the networks; every switch is off by default."""

    model_config = ConfigDict(frozen=True)
    precision: Literal[tuple(PRECISIONS)] = Field(
        'fp32', description='autocast of the forward passes in training and validation; fp16 trains with a gradient '
                            'scaler, saved in and resumed from the training states')
    channels_last: Bool = Field(False, description='weights and input batches in the NHWC memory format, which cuDNN '
                                                   'and oneDNN convolutions run fastest on')
    compile: Bool | Literal[COMPILE_MODES] = Field(
        False, description='torch.compile the networks in place: true for the default mode, or a mode; checkpoints '
                           'keep their keys; the first iterations are slow while the graphs compile')

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


def parse_acceleration_options(block: Mapping | None) -> AccelerationOptions:
    """The ``acceleration:`` block of an option file, typed (None: the defaults).

    Raises:
        OptionError: naming the offending ``acceleration.<key>`` and what it allows.
    """
    return validate_block(AccelerationOptions, {} if block is None else block, ('acceleration', ))


# torchdiffeq 0.2.5's solvers that step on the given grid (one call of the grid per step) ...
FIXED_STEP_SOLVERS = ('euler', 'midpoint', 'heun2', 'heun3', 'rk4', 'explicit_adams', 'implicit_adams',
                      'fixed_adams')
# ... and those that choose their own steps from rtol / atol.
ADAPTIVE_SOLVERS = ('dopri5', 'dopri8', 'bosh3', 'fehlberg2', 'adaptive_heun')
SOLVERS = FIXED_STEP_SOLVERS + ADAPTIVE_SOLVERS
GRADIENT_MODES = ('backprop', 'adjoint', 'checkpoint')

# A sample whose t0 is this close to 1 is already at the target: it needs no solve.
T_EQUALS_ONE = 1e-6


class ODEOptions(Block):
    """``ode``: how NODESRModel solves the ODE from every ``t0`` to 1."""

    model_config = ConfigDict(frozen=True)
    solver: Literal[SOLVERS] = Field('rk4', description="a torchdiffeq method; rk4 is the paper's")
    num_steps: PositiveInt | None = Field(
        None, description='fixed-step solvers: uniform steps from every t0 to 1; without it and step_size, 1 (the '
                          "paper's grid [t0, 1])")
    step_size: PositiveFloat | None = Field(
        None, description='fixed-step solvers, instead of num_steps: the largest step in t; a sample takes '
                          'ceil((t0 - 1) / step_size) uniform steps')
    rtol: PositiveFloat = Field(1e-3, description="adaptive solvers: relative tolerance (torchdiffeq's 1e-7 is far "
                                                  'tighter than 8-bit images need)')
    atol: PositiveFloat = Field(1e-4, description='adaptive solvers: absolute tolerance, in [0, 1] image units')
    gradient: Literal[GRADIENT_MODES] = Field(
        'backprop', description='backprop through every solver stage; adjoint (memory independent of the steps, '
                                'gradients of the continuous adjoint); checkpoint (exact gradients, every evaluation '
                                'of f recomputed in the backward pass)')

    @model_validator(mode='after')
    def _steps_fit_the_solver(self) -> 'ODEOptions':
        given = self.model_fields_set
        if {'num_steps', 'step_size'} <= given:
            raise rule_error('given together with step_size; give one of them', 'num_steps')
        for key in ('num_steps', 'step_size'):
            if key in given and self.adaptive:
                raise rule_error(f'for the fixed-step solvers ({", ".join(FIXED_STEP_SOLVERS)}) only; solver '
                                 f'{self.solver} chooses its own steps from rtol and atol', key)
        # Ignoring them would leave the file saying what the run does not do.
        for key in ('rtol', 'atol'):
            if key in given and not self.adaptive:
                raise rule_error(f'for the adaptive solvers ({", ".join(ADAPTIVE_SOLVERS)}) only; solver '
                                 f'{self.solver} takes num_steps or step_size', key)
        return self

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


def parse_ode_options(block: Mapping | None) -> ODEOptions:
    """The ``ode:`` block of an option file, typed (None: the defaults).

    Raises:
        OptionError: naming the offending ``ode.<key>`` and what it allows.
    """
    return validate_block(ODEOptions, {} if block is None else block, ('ode', ))
