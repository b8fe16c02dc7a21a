"""NODE-SR inference, written once: ``I(t0)`` by bicubic upscaling, then ``dI/dt = f(I, t)`` from ``t0`` to 1.

:class:`NODESR` is what every NODE-SR super-resolution runs: the training model's validation and test
(:class:`~oisr_basicsr.models.nodesr_model.NODESRModel`), ``oisr infer``, ``oisr export`` (the module with its
scale fixed is the exported graph), ``oisr plot-scales`` and ``oisr compare``.
"""

import copy
from collections.abc import Mapping

import torch
from torch import nn

from ..complexity import count_macs
from ..data.resize import upscale_lr
from ..options.blocks import ODEOptions, parse_ode_options
from .node_solver import ODESolution, integrate

# torchdiffeq's fixed-grid solvers: evaluations of f per step (the Adams methods reuse earlier ones: one).
EVALUATIONS_PER_STEP = {'euler': 1, 'midpoint': 2, 'heun2': 2, 'heun3': 3, 'rk4': 4}


class NODESR(nn.Module):
    """Super-resolution by a real scale ``t0 >= 1`` with a NODE-SR dynamics network.

    The LR batch is upscaled by ``t0`` with MATLAB-style bicubic
    (:func:`~oisr_basicsr.data.resize.upscale_lr`), which is ``I(t0)``, and ``dI/dt = f(I, t)`` is integrated
    from ``t0`` down to ``t = 1`` (:func:`~oisr_basicsr.models.node_solver.integrate`); ``I(1)`` is the SR image.
    Calling the module returns ``I(1)``, not clipped. It changes neither the network's mode nor gradient
    tracking: callers put the network in eval mode and switch gradients off for inference, and choose the
    precision (autocast) around the call.

    Args:
        dynamics: The network ``f(x, t)``, ``t`` an ``N``-tensor (``NODEVDSR``, ``NODERDN``, ``NODEOISR``); the
            bare module, not a DistributedDataParallel wrapper (the solver calls it several times per forward,
            which DDP's gradient hooks do not allow).
        ode: The solver, its steps and tolerances, and the gradient mode.
        scale: A fixed ``t0``, used when a call gives none: with it the module maps an LR batch alone to its SR
            batch, which is what ``oisr export`` traces.
        channels_last: Hold ``I(t0)`` in the channels_last memory format (the ``acceleration`` block's).
    """

    def __init__(self, dynamics: nn.Module, ode: ODEOptions, scale: float | None = None, channels_last: bool = False):
        super().__init__()
        self.dynamics = dynamics
        self.ode = ode
        self.scale = scale
        self.channels_last = channels_last

    @classmethod
    def from_options(cls, dynamics: nn.Module, opt: Mapping, scale: float | None = None) -> 'NODESR':
        """The module for an option dict's ``ode`` block.

        Args:
            dynamics: The option dict's ``network_g``, built.
            opt: The options.
            scale: A fixed ``t0`` (see the class).

        Raises:
            ValueError: The ``ode`` block is not valid, naming the key.
        """
        return cls(dynamics, parse_ode_options(opt.get('ode')), scale)

    def _start_time(self, scale: float | torch.Tensor | None) -> float | torch.Tensor:
        if scale is not None:
            return scale
        if self.scale is None:
            raise ValueError('NODESR needs a scale: give one to the call or fix one when building the module')
        return self.scale

    def initial_state(self,
                      lq: torch.Tensor,
                      scale: float | torch.Tensor | None = None,
                      size: tuple[int, int] | None = None) -> torch.Tensor:
        """``I(t0)``: the LR batch upscaled by bicubic interpolation.

        Args:
            lq: ``N x C x h x w`` LR images in [0, 1].
            scale: ``t0``, one for the batch (a number, or a tensor of equal values); default the fixed one.
            size: Output ``(H, W)``, e.g. the reference HR's size; default ``floor(h t0) x floor(w t0)``.
        """
        i0 = upscale_lr(lq, self._start_time(scale), size)
        return i0.contiguous(memory_format=torch.channels_last) if self.channels_last else i0

    def solve(self,
              i0: torch.Tensor,
              scale: float | torch.Tensor | None = None,
              return_states: bool = False) -> ODESolution:
        """Integrate from ``I(t0) = i0`` to ``t = 1``.

        Args:
            i0: ``N x C x H x W`` initial states.
            scale: ``t0``: one number, or an ``N``-tensor with one start time per sample; default the fixed one.
            return_states: Also return the intermediate states (one ``t0`` for the batch).
        """
        return integrate(self.dynamics, i0, self._start_time(scale), self.ode, return_states)

    def super_resolve(self,
                      lq: torch.Tensor,
                      scale: float | torch.Tensor | None = None,
                      size: tuple[int, int] | None = None,
                      return_states: bool = False) -> ODESolution:
        """:meth:`initial_state`, then :meth:`solve`: the solution whose ``final`` is the SR batch.

        Args:
            lq: ``N x C x h x w`` LR images in [0, 1].
            scale: ``t0 >= 1``, one for the batch; default the fixed one.
            size: Output ``(H, W)``; default ``floor(h t0) x floor(w t0)``.
            return_states: Also return the states ``I(t_i)`` at the solver's steps (the progressive restoration
                of the paper's Fig. 2) and their times.
        """
        t0 = self._start_time(scale)
        return self.solve(self.initial_state(lq, t0, size), t0, return_states)

    def forward(self,
                lq: torch.Tensor,
                scale: float | torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """The SR batch of :meth:`super_resolve`, not clipped."""
        return self.super_resolve(lq, scale, size).final

    def network_evaluations(self, scale: float | None = None) -> int:
        """Evaluations of the network in one solve from ``scale`` (default the fixed one) to 1.

        Raises:
            ValueError: The solver is adaptive, so the count depends on the image.
        """
        if self.ode.adaptive:
            raise ValueError(f'ode.solver {self.ode.solver} chooses its steps from the image, so its number of '
                             'network evaluations is not known in advance; use a fixed-step solver such as rk4')
        t0 = float(self._start_time(scale))
        return EVALUATIONS_PER_STEP.get(self.ode.solver, 1) * self.ode.steps_for(t0)

    def macs(self, output_size: tuple[int, int], channels: int = 3, scale: float | None = None) -> int:
        """Multiply-accumulates of one solve for an ``output_size`` SR image: :meth:`network_evaluations` times
        those of the network at that size (counted on the meta device, so free of memory and time).

        Args:
            output_size: SR ``(H, W)``; the network runs at this size.
            channels: Channels of the image.
            scale: ``t0``; default the fixed one.
        """
        evaluations = self.network_evaluations(scale)
        dynamics = copy.deepcopy(self.dynamics).to('meta')
        return evaluations * count_macs(_AtTimeOne(dynamics), (1, channels, *output_size))


class _AtTimeOne(nn.Module):
    """``f(x, 1)``: a dynamics network called as the MAC counter calls networks (every evaluation costs the same)."""

    def __init__(self, dynamics: nn.Module):
        super().__init__()
        self.dynamics = dynamics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dynamics(x, 1.0)
