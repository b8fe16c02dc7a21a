"""Integration of the NODE-SR ODE ``dI/dt = f(I, t)`` from ``t0`` down to 1 with torchdiffeq.

torchdiffeq integrates a whole batch over one time grid, but every sample of a
NODE-SR batch has its own start time ``t0`` (its scale factor). The change of
variable ``t(s) = t0 + s (1 - t0)``, ``s`` in [0, 1], gives every sample the
same interval::

    dI/ds = (1 - t0) f(I, t(s)),    I(s = 0) = I(t0),    I(s = 1) = I(t = 1).

For a fixed-step solver, ``n`` uniform steps in ``s`` are exactly ``n`` uniform
steps of size ``(t0 - 1) / n`` in ``t`` for each sample, so a mixed batch gives
each sample the result it would get alone.
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchdiffeq import odeint, odeint_adjoint

from ..options import T_EQUALS_ONE, ODEOptions


class ODESolution(NamedTuple):
    """Result of :func:`integrate`.

    Args:
        final: ``I(1)``, ``N x C x H x W``.
        states: With ``return_states``: ``K x N x C x H x W``, the state at the start of every
            (accepted) solver step followed by the final state, ``states[0] = I(t0)``; else None.
        times: With ``return_states``: the ``K`` times ``t`` of ``states``, decreasing from ``t0`` to 1.
        nfe: Number of evaluations of the network in the forward solve (all sample groups together).
    """

    final: torch.Tensor
    states: torch.Tensor | None
    times: torch.Tensor | None
    nfe: int


class ScaledDynamics(nn.Module):
    """``dI/ds = (1 - t0) f(I, t0 + s (1 - t0))`` for a batch with per-sample ``t0``.

    Counts its forward evaluations and optionally checkpoints each of them.

    Args:
        net: The dynamics ``f(x, t)`` with ``t`` an ``N``-tensor.
        t0: ``N``-tensor of start times.
        use_checkpoint: Recompute ``f``'s activations in the backward pass instead of storing them.
        record_accepted_steps: Keep a detached copy of the state at the start of every step an
            adaptive solver accepts (torchdiffeq's ``callback_accept_step``), in ``recorded``.
    """

    def __init__(self,
                 net: nn.Module,
                 t0: torch.Tensor,
                 use_checkpoint: bool = False,
                 record_accepted_steps: bool = False):
        super().__init__()
        self.net = net
        self.t0 = t0
        self.use_checkpoint = use_checkpoint
        self.nfe = 0
        self.recorded: list[tuple[float, torch.Tensor]] = []
        if record_accepted_steps:
            # An instance attribute, not a method: torchdiffeq warns about callbacks its solver does not call,
            # and the fixed-step solvers do not call this one.
            self.callback_accept_step = self._record

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        span = 1 - self.t0
        t = self.t0 + s.to(self.t0.dtype) * span
        if self.use_checkpoint and torch.is_grad_enabled():
            f = checkpoint(self.net, x, t, use_reentrant=False)
        else:
            f = self.net(x, t)
        # The state keeps its own precision when the network runs under autocast in bf16 / fp16.
        return span.to(x.dtype).view(-1, 1, 1, 1) * f.to(x.dtype)

    def _record(self, s: torch.Tensor, x: torch.Tensor, ds: torch.Tensor) -> None:
        self.recorded.append((float(s.detach()), x.detach().clone()))


def _solve(dynamics: ScaledDynamics, x0: torch.Tensor, grid: torch.Tensor, options: ODEOptions) -> torch.Tensor:
    tolerances = dict(rtol=options.rtol, atol=options.atol) if options.adaptive else {}
    if options.gradient == 'adjoint' and torch.is_grad_enabled():
        params = tuple(p for p in dynamics.net.parameters() if p.requires_grad)
        return odeint_adjoint(dynamics, x0, grid, method=options.solver, adjoint_params=params, **tolerances)
    return odeint(dynamics, x0, grid, method=options.solver, **tolerances)


def integrate(net: nn.Module,
              i0: torch.Tensor,
              t0: torch.Tensor | float,
              options: ODEOptions,
              return_states: bool = False) -> ODESolution:
    """Solve ``dI/dt = net(I, t)`` from ``I(t0) = i0`` to ``t = 1`` for every sample.

    Samples are grouped by their number of steps (one group for adaptive solvers,
    one per step count with ``options.step_size``); samples with ``t0 = 1`` are
    returned unchanged without evaluating ``net``.

    Args:
        net: The dynamics, called as ``net(x, t)`` with ``x`` ``M x C x H x W`` and ``t`` an ``M``-tensor.
            Pass the bare module, not a DistributedDataParallel wrapper (it is called several times
            per forward, which DDP's gradient hooks do not allow).
        i0: ``N x C x H x W`` initial states ``I(t0)``.
        t0: Start times, at least 1: one number or an ``N``-tensor.
        options: Solver, steps, tolerances and gradient mode.
        return_states: Also return the intermediate states; needs one ``t0`` for the whole batch.

    Returns:
        The :class:`ODESolution`.
    """
    if i0.ndim != 4:
        raise ValueError(f'i0 must be an NxCxHxW batch, got shape {tuple(i0.shape)}')
    n = i0.shape[0]
    t0 = torch.as_tensor(t0, dtype=torch.float32, device=i0.device).reshape(-1)
    if t0.numel() == 1:
        t0 = t0.expand(n)
    if t0.shape != (n, ):
        raise ValueError(f't0 must be one number or hold one time per sample ({n}), got {t0.numel()} values')
    if bool((t0 < 1 - T_EQUALS_ONE).any()):
        raise ValueError(f't0 (the scale factor) must be at least 1, got {t0.min().item():g}')
    if return_states and bool((t0 != t0[0]).any()):
        raise ValueError('return_states needs the same t0 for every sample of the batch')
    steps = [options.steps_for(value) for value in t0.tolist()]

    final, nfe = i0, 0
    states, s_values = i0.unsqueeze(0), torch.zeros(1, device=i0.device)
    for num_steps in sorted(set(steps) - {0}):
        index = torch.tensor([i for i, k in enumerate(steps) if k == num_steps], device=i0.device)
        whole_batch = len(index) == n
        x0 = i0 if whole_batch else i0.index_select(0, index)
        dynamics = ScaledDynamics(net, t0[index], options.gradient == 'checkpoint',
                                  record_accepted_steps=return_states and options.adaptive)
        grid = torch.linspace(0, 1, num_steps + 1, device=i0.device)
        solution = _solve(dynamics, x0, grid, options)
        nfe += dynamics.nfe
        final = solution[-1] if whole_batch else final.index_copy(0, index, solution[-1])
        if return_states:
            if options.adaptive:
                s_list = [s for s, _ in dynamics.recorded] + [1.0]
                solution = torch.stack([x for _, x in dynamics.recorded] + [solution[-1]])
                grid = torch.tensor(s_list, device=i0.device)
            states, s_values = solution.detach(), grid
    if not return_states:
        return ODESolution(final, None, None, nfe)
    times = t0[0] + s_values * (1 - t0[0])
    return ODESolution(final, states, times, nfe)
