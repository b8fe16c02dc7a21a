"""NODE-SR integrates from t0 down to 1, checked against a closed-form solution that depends on the path.

The right-hand sides of tests/test_nodesr_model.py (``a I``, ``t^3``) give answers that depend only on the
integral of ``f`` over the interval, so a solve whose time runs from 1 to ``t0`` while the state starts at
``I(t0)`` gives them the same answer. ``f(I, t) = I + t - 2`` does not: with ``I(t0) = I0``, the integrating
factor ``e^(-t)`` gives ``(I e^(-t))' = (t - 2) e^(-t)``, so ``I(t) = (I0 + t0 - 1) e^(t - t0) - t + 1`` and

    I(1) = (I0 + t0 - 1) e^(1 - t0),

in (0, 1) for ``I0`` in [0, 1] and ``t0`` in [1.5, 4]. With time reversed (``t(s) = 1 + s (t0 - 1)``) the solve
gives ``(I0 - 2) e^(-u) + 2 - u``, ``u = t0 - 1``: at least 0.016 away at the scales below.

Every solver the ``ode:`` block offers is run through the model's integration (``NODESRModel.test`` and its
training forward) and through every inference entry point (:data:`INFERENCE_PATHS`, and ``oisr plot-scales``'
PSNR), at several ``t0``. All of them run :class:`~oisr_basicsr.models.nodesr.NODESR` today; they are tested one by
one so that none can stop doing so unseen.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import smooth_image
from torch import nn

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.metrics import calculate_psnr

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.data.continuous_scale_dataset import benchmark_pair
from oisr_basicsr.data.resize import upscale_lr
from oisr_basicsr.inference.upsampler import network_upsampler
from oisr_basicsr.models.nodesr import NODESR
from oisr_basicsr.models.nodesr_model import NODESRModel
from oisr_basicsr.options.blocks import ADAPTIVE_SOLVERS, FIXED_STEP_SOLVERS, SOLVERS, ODEOptions
from oisr_basicsr.tools.export_onnx import plan_export
from oisr_basicsr.tools.plot_scales import psnr_at_scale

pytestmark = pytest.mark.usefixtures('one_thread')

T0 = (1.5, 2.5, 4.0)
TINY_VDSR = {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3}

# Fixed-step solvers: (order p, step h). A method of order p errs by C h^p; this ODE's constants C, measured, are
# below 1 (euler 0.34, midpoint and heun2 0.11, heun3 0.03, rk4 0.006), so h^p bounds the error. The Adams methods
# take two RK4 steps, then use up to 12 past values, so they do better than order 4. explicit_adams
# (Adams-Bashforth up to order 11) is stable here (|df/dI| = 1) only with steps up to about 0.002; with 0.005 it
# blows up to 1e14.
FIXED_STEPS = {'euler': (1, 0.001), 'midpoint': (2, 0.02), 'heun2': (2, 0.02), 'heun3': (3, 0.05), 'rk4': (4, 0.1),
               'explicit_adams': (4, 0.001), 'implicit_adams': (4, 0.1), 'fixed_adams': (4, 0.1)}
# float32 rounding over up to 3,000 steps.
ROUNDING = 1e-5
# Adaptive solvers keep each step's error below atol + rtol |I|; over a solve of tens to hundreds of steps the
# error can add up to a few hundred times that.
ADAPTIVE_TOLERANCE = 1e-6
ADAPTIVE_BOUND = 500 * ADAPTIVE_TOLERANCE


@dataclass(frozen=True)
class SolverCase:
    """One solver, its ``ode:`` block and the bound on its error for :class:`StateAndTime`.

    Args:
        solver: One of the ``ode.solver`` values.
    """

    solver: str

    @property
    def ode(self) -> dict:
        if self.solver in ADAPTIVE_SOLVERS:
            return {'solver': self.solver, 'rtol': ADAPTIVE_TOLERANCE, 'atol': ADAPTIVE_TOLERANCE}
        return {'solver': self.solver, 'step_size': FIXED_STEPS[self.solver][1]}

    @property
    def bound(self) -> float:
        if self.solver in ADAPTIVE_SOLVERS:
            return ADAPTIVE_BOUND
        order, step = FIXED_STEPS[self.solver]
        return step**order + ROUNDING


CASES = [SolverCase(solver) for solver in SOLVERS]


class StateAndTime(nn.Module):
    """``f(I, t) = I + t - 2``, ``t`` one time per sample."""

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return x + t - 2


def exact(i0: torch.Tensor, t0: torch.Tensor | float) -> torch.Tensor:
    """``I(1)`` for :class:`StateAndTime` from ``I(t0) = i0`` (module docstring)."""
    t0 = torch.as_tensor(t0, dtype=torch.float64).reshape(-1, 1, 1, 1)
    return ((i0.double() + t0 - 1) * torch.exp(1 - t0)).float()


def reversed_time(i0: torch.Tensor, t0: torch.Tensor | float) -> torch.Tensor:
    """What a solve whose time runs from 1 to ``t0`` gives for :class:`StateAndTime` (module docstring)."""
    u = torch.as_tensor(t0, dtype=torch.float64).reshape(-1, 1, 1, 1) - 1
    return ((i0.double() - 2) * torch.exp(-u) + 2 - u).float()


def nodesr_model(ode: dict, train: bool = False) -> NODESRModel:
    """A NODE-SR model on the CPU whose dynamics is :class:`StateAndTime`."""
    opt = {'name': 'time_direction', 'model_type': 'NODESRModel', 'num_gpu': 0, 'is_train': train, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': TINY_VDSR, 'ode': ode,
           'path': {'pretrain_network_g': None, 'strict_load_g': True}}
    model = NODESRModel(opt)
    model.net_g = StateAndTime()
    return model


def nodesr_options(ode: dict, weights: str | None = None) -> dict:
    return {'name': 'time_direction', 'model_type': 'NODESRModel', 'network_g': TINY_VDSR, 'ode': ode,
            'path': {'pretrain_network_g': weights}}


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> str:
    """A NODEVDSR checkpoint, which ``oisr export``'s planning loads before its dynamics are replaced."""
    path = tmp_path_factory.mktemp('weights') / 'node.pth'
    torch.save({'params': NODEVDSR(num_feat=8, num_layer=3).state_dict()}, path)
    return str(path)


# The inference entry points, each mapping (dynamics, ode block, LR batch, t0, checkpoint) to its SR batch.
def by_module(dynamics: nn.Module, ode: dict, lq: torch.Tensor, t0: float, weights: str) -> torch.Tensor:
    """NODE-SR's inference module, as ``oisr compare`` runs it."""
    return NODESR.from_options(dynamics, nodesr_options(ode))(lq, t0)


def by_super_resolve(dynamics: nn.Module, ode: dict, lq: torch.Tensor, t0: float, weights: str) -> torch.Tensor:
    model = nodesr_model(ode)
    model.net_g = dynamics
    return model.super_resolve(lq, t0).final


def by_upsampler(dynamics: nn.Module, ode: dict, lq: torch.Tensor, t0: float, weights: str) -> torch.Tensor:
    """What ``oisr infer`` runs."""
    return network_upsampler(nodesr_options(ode), dynamics, t0, torch.device('cpu'))(lq)


def by_export_module(dynamics: nn.Module, ode: dict, lq: torch.Tensor, t0: float, weights: str) -> torch.Tensor:
    """The module ``oisr export`` traces (fixed-step solvers only)."""
    module = plan_export(nodesr_options(ode, weights), None, t0, tuple(lq.shape[-2:])).module
    module.dynamics = dynamics
    return module(lq)


INFERENCE_PATHS: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...]]] = {
    'module': (by_module, SOLVERS),
    'super_resolve': (by_super_resolve, SOLVERS),
    'upsampler': (by_upsampler, SOLVERS),
    'export_module': (by_export_module, FIXED_STEP_SOLVERS),
}


@pytest.fixture(autouse=True)
def quiet_adams_corrector():
    # torchdiffeq's implicit Adams corrector warns when its functional iteration stops after 4 rounds; the result
    # is still within the bound, which is what is tested.
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Functional iteration did not converge')
        yield


def test_a_reversed_time_path_is_outside_every_bound():
    i0 = torch.linspace(0, 1, 11).reshape(1, 1, 1, -1).expand(len(T0), 1, 1, -1)
    gap = (reversed_time(i0, torch.tensor(T0)) - exact(i0, torch.tensor(T0))).abs()
    assert gap.min() > 3 * max(case.bound for case in CASES)
    assert 0 < exact(i0, torch.tensor(T0)).min() and exact(i0, torch.tensor(T0)).max() < 1  # no clipping needed


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.solver)
def test_model_integrates_from_t0_down_to_1(case):
    torch.manual_seed(0)
    model = nodesr_model(case.ode)
    i0 = torch.rand(len(T0), 3, 4, 5)
    t0 = torch.tensor(T0)
    # A training patch is I(t0) itself, so every sample of the batch starts from its own t0.
    model.feed_data({'lq': i0, 'gt': torch.zeros_like(i0), 'scale': t0})
    model.test()
    expected = exact(i0, t0)
    torch.testing.assert_close(model.output, expected, rtol=0, atol=case.bound)
    output, _ = model.training_forward()
    torch.testing.assert_close(output, expected, rtol=0, atol=case.bound)


@pytest.mark.parametrize(('path', 'case'), [(path, case) for path, (_, solvers) in INFERENCE_PATHS.items()
                                            for case in CASES if case.solver in solvers],
                         ids=lambda value: value if isinstance(value, str) else value.solver)
def test_inference_integrates_from_t0_down_to_1(path, case, weights):
    super_resolve, _ = INFERENCE_PATHS[path]
    lq = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    for t0 in T0:
        expected = exact(upscale_lr(lq, t0), t0)  # I(t0) is the bicubic upscale, floor(h t0) x floor(w t0)
        result = super_resolve(StateAndTime(), case.ode, lq, t0, weights)
        assert result.shape == expected.shape
        torch.testing.assert_close(result, expected, rtol=0, atol=case.bound,
                                   msg=lambda text, t0=t0: f't0 {t0}: {text}')


def _y_rmse(sr: torch.Tensor, reference: np.ndarray, shave: int) -> float:
    """Root mean square Y-channel error in 8-bit levels, from BasicSR's PSNR (what ``oisr plot-scales`` reports)."""
    rgb = sr[0].clamp(0, 1).permute(1, 2, 0).double().numpy()
    bgr = np.round(rgb[..., ::-1] * 255).astype(np.uint8)
    return _rmse_of_psnr(calculate_psnr(bgr, reference, crop_border=shave, test_y_channel=True))


def _rmse_of_psnr(psnr: float) -> float:
    return 255 * 10**(-psnr / 20)


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.solver)
def test_plot_scales_integrates_from_t0_down_to_1(case):
    # Below half an 8-bit level, no pixel of the 8-bit result moves by more than one level, nor does the RMSE.
    assert case.bound < 0.5 / 255
    hr = smooth_image(np.random.default_rng(0), 30, 26)
    nodesr = NODESR(StateAndTime(), ODEOptions(**case.ode))
    for t0 in T0:
        lr, reference = benchmark_pair(hr, t0)
        lq = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1].transpose(2, 0, 1))).float().div(255)[None]
        i0 = upscale_lr(lq, t0, reference.shape[:2])
        psnr, _ = psnr_at_scale(nodesr, [hr], t0)
        expected = _y_rmse(exact(i0, t0), reference, math.ceil(t0))
        assert abs(_rmse_of_psnr(psnr) - expected) <= 1, (t0, psnr)
        assert abs(_y_rmse(reversed_time(i0, t0), reference, math.ceil(t0)) - expected) > 1  # the test can tell
