"""The ODE blocks are the numerical schemes they claim to be: exact steps, orders of accuracy, leapfrog recurrence."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)
from oisr_basicsr.archs.ode_schemes import (
    BUTCHER_TABLEAUS,
    ButcherTableau,
    LeapfrogBlock,
    RungeKuttaBlock,
    VectorizedPReLU,
    make_ode_block,
    make_step_function,
    steps_per_block,
)

DIM = 4


class LinearStep(nn.Module):
    """G(y) = h * A y on row vectors, with ``h * A`` fixed."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.register_buffer('matrix', matrix)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix.T


class TanhStep(nn.Module):
    """G(y) = h * tanh(A y): a nonlinear f, where order conditions beyond the linear ones matter."""

    def __init__(self, matrix: torch.Tensor, h: float):
        super().__init__()
        self.register_buffer('matrix', matrix)
        self.h = h

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.h * torch.tanh(y @ self.matrix.T)


def system_matrix() -> torch.Tensor:
    """A fixed 4x4 matrix with eigenvalues -1, -0.5, 0.3, 0.8 in a non-orthogonal basis."""
    generator = torch.Generator().manual_seed(0)
    basis = torch.eye(DIM, dtype=torch.float64) + 0.3 * torch.randn(DIM, DIM, generator=generator, dtype=torch.float64)
    eigenvalues = torch.tensor([-1.0, -0.5, 0.3, 0.8], dtype=torch.float64)
    return basis @ torch.diag(eigenvalues) @ torch.linalg.inv(basis)


def initial_value() -> torch.Tensor:
    return torch.tensor([[1.0, -0.5, 0.25, 2.0]], dtype=torch.float64)


def float64_block(scheme: str, steps: list[nn.Module]) -> nn.Module:
    # The scalars are created with the default dtype; float32 would round 1/6 and 1/3 and cap the attainable
    # accuracy near 1e-8, which the fourth-order errors below reach.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return make_ode_block(scheme, steps)
    finally:
        torch.set_default_dtype(previous)


def rk_step(tableau: ButcherTableau, g, y: torch.Tensor) -> torch.Tensor:
    """One explicit Runge-Kutta step written from the tableau numbers alone."""
    stages = []
    for row in tableau.a:
        stages.append(g(y + sum((a * k for a, k in zip(row, stages, strict=True)), torch.zeros_like(y))))
    return y + sum(b * k for b, k in zip(tableau.b, stages, strict=True))


# The paper's RK2 and RK3 blocks at their initial scalars are Heun's and Kutta's schemes.
SCHEME_TABLEAUS = {**{name: name for name in BUTCHER_TABLEAUS}, 'rk2': 'heun', 'rk3': 'kutta3'}


def order_of(scheme: str) -> int:
    return BUTCHER_TABLEAUS[SCHEME_TABLEAUS[scheme]].order


def test_expected_tableaus_and_orders():
    # The orders the schemes are known for (each uses the minimum number of stages for its order, so the stage
    # counts are the same numbers); a wrong `order` field would make the convergence tests check less.
    expected = {'euler': 1, 'midpoint': 2, 'heun': 2, 'ralston': 2, 'kutta3': 3, 'ssprk3': 3, 'rk4': 4, 'rk38': 4}
    assert {name: t.order for name, t in BUTCHER_TABLEAUS.items()} == expected
    assert {name: t.num_stages for name, t in BUTCHER_TABLEAUS.items()} == expected


@pytest.mark.parametrize('scheme', SCHEME_TABLEAUS)
def test_block_with_linear_g_is_one_rk_step(scheme: str):
    tableau = BUTCHER_TABLEAUS[SCHEME_TABLEAUS[scheme]]
    h_matrix = 0.3 * system_matrix()
    # One matrix per stage: each G has its own weights, so the block must use them in stage order.
    matrices = [h_matrix * (1 + 0.1 * i) for i in range(steps_per_block(scheme))]
    block = float64_block(scheme, [LinearStep(m) for m in matrices])
    y0 = initial_value()
    stages = []
    for row, matrix in zip(tableau.a, matrices, strict=True):
        stage_input = y0 + sum((a * k for a, k in zip(row, stages, strict=True)), torch.zeros_like(y0))
        stages.append(stage_input @ matrix.T)
    expected = y0 + sum(b * k for b, k in zip(tableau.b, stages, strict=True))
    torch.testing.assert_close(block(y0), expected, rtol=1e-12, atol=1e-12)


def observed_orders(errors: list[float]) -> list[float]:
    return [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:], strict=False)]


@pytest.mark.parametrize('scheme', SCHEME_TABLEAUS)
def test_local_error_of_linear_ode_shrinks_as_h_to_the_order_plus_one(scheme: str):
    a_matrix, y0 = system_matrix(), initial_value()
    errors = []
    for h in (0.2, 0.1, 0.05):
        block = float64_block(scheme, [LinearStep(h * a_matrix) for _ in range(steps_per_block(scheme))])
        exact = y0 @ torch.linalg.matrix_exp(h * a_matrix).T
        errors.append((block(y0) - exact).norm().item())
    expected = order_of(scheme) + 1
    assert all(abs(order - expected) < 0.3 for order in observed_orders(errors)), (errors, expected)


def reference_solution(a_matrix: torch.Tensor, y0: torch.Tensor, h: float, substeps: int = 200) -> torch.Tensor:
    """y(h) for y' = tanh(A y) by classic RK4 with many small steps, written out independently of the package."""
    dt = h / substeps
    y = y0
    for _ in range(substeps):
        k1 = torch.tanh(y @ a_matrix.T)
        k2 = torch.tanh((y + dt / 2 * k1) @ a_matrix.T)
        k3 = torch.tanh((y + dt / 2 * k2) @ a_matrix.T)
        k4 = torch.tanh((y + dt * k3) @ a_matrix.T)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


@pytest.mark.parametrize('scheme', SCHEME_TABLEAUS)
def test_local_error_of_nonlinear_ode_shrinks_as_h_to_the_order_plus_one(scheme: str):
    # For linear ODEs every s-stage scheme of order s gives the same step, so only a nonlinear f can expose a
    # tableau that satisfies the linear order conditions but not the full ones.
    a_matrix, y0 = system_matrix(), initial_value()
    errors = []
    for h in (0.2, 0.1, 0.05):
        block = float64_block(scheme, [TanhStep(a_matrix, h) for _ in range(steps_per_block(scheme))])
        errors.append((block(y0) - reference_solution(a_matrix, y0, h)).norm().item())
    expected = order_of(scheme) + 1
    assert all(abs(order - expected) < 0.3 for order in observed_orders(errors)), (errors, expected)


def test_rk_step_reference_matches_block_on_nonlinear_g():
    # The block's own loop against the textbook formula, for every tableau, on a nonlinear G.
    a_matrix, y0 = system_matrix(), initial_value()
    for name, tableau in BUTCHER_TABLEAUS.items():
        step = TanhStep(a_matrix, 0.3)
        block = float64_block(name, [step] * tableau.num_stages)
        torch.testing.assert_close(block(y0), rk_step(tableau, step, y0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('num_steps', [1, 2, 4, 5])
def test_leapfrog_block_is_the_leapfrog_recurrence(num_steps: int):
    h_matrix = 0.3 * system_matrix()
    matrices = [h_matrix * (1 - 0.1 * i) for i in range(num_steps)]
    y0 = initial_value()
    if num_steps == 4:
        block = float64_block('lf', [LinearStep(m) for m in matrices])
    else:
        block = LeapfrogBlock([LinearStep(m) for m in matrices]).double()
    previous, current = torch.zeros_like(y0), y0  # y_{-1} = 0, y_0 = x
    for matrix in matrices:
        previous, current = current, previous + 2 * current @ matrix.T
    torch.testing.assert_close(block(y0), current, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name', BUTCHER_TABLEAUS)
def test_tableau_satisfies_the_order_conditions(name: str):
    tableau = BUTCHER_TABLEAUS[name]
    a = [list(row) + [0.0] * (tableau.num_stages - len(row)) for row in tableau.a]
    b = list(tableau.b)
    c = [sum(row) for row in a]
    s = range(tableau.num_stages)
    conditions = {
        1: [(sum(b), 1.0)],
        2: [(sum(b[i] * c[i] for i in s), 1 / 2)],
        3: [(sum(b[i] * c[i]**2 for i in s), 1 / 3),
            (sum(b[i] * a[i][j] * c[j] for i in s for j in s), 1 / 6)],
        4: [(sum(b[i] * c[i]**3 for i in s), 1 / 4),
            (sum(b[i] * c[i] * a[i][j] * c[j] for i in s for j in s), 1 / 8),
            (sum(b[i] * a[i][j] * c[j]**2 for i in s for j in s), 1 / 12),
            (sum(b[i] * a[i][j] * a[j][k] * c[k] for i in s for j in s for k in s), 1 / 24)],
    }
    for order in range(1, tableau.order + 1):
        for value, target in conditions[order]:
            assert value == pytest.approx(target, abs=1e-12), (name, order)
    # A claimed order must also be the true one: the next condition set fails somewhere.
    if tableau.order < 4:
        assert any(abs(value - target) > 1e-6 for value, target in conditions[tableau.order + 1])


@pytest.mark.parametrize('a,b', [
    (((), (0.5, 0.5)), (0.5, 0.5)),
    (((0.0, ), (1.0, )), (0.5, 0.5)),
    (((), (1.0, )), (1.0, )),
])
def test_malformed_tableau_raises(a, b):
    with pytest.raises(ValueError, match='explicit'):
        ButcherTableau(a=a, b=b, order=1)


def test_wrong_number_of_step_functions_raises():
    with pytest.raises(ValueError, match="scheme 'rk4' needs 4 step functions, got 3"):
        make_ode_block('rk4', [nn.Identity() for _ in range(3)])
    with pytest.raises(ValueError, match='3 stages but 2 step functions'):
        RungeKuttaBlock(BUTCHER_TABLEAUS['kutta3'], [nn.Identity(), nn.Identity()])


@pytest.mark.parametrize('shape,num_parameters', [((2, 5, 7, 6), 5), ((2, 5, 7, 6), 1), ((3, 4), 4),
                                                  ((2, 3, 5), 3)])
def test_vectorized_prelu_has_pytorchs_values_and_gradients(shape, num_parameters):
    torch.manual_seed(0)
    prelu = VectorizedPReLU(num_parameters, init=0.25).double()
    with torch.no_grad():
        prelu.weight.uniform_(-0.5, 0.5)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x.data[..., 0] = 0  # the kink: both implementations take the negative branch's slope there
    grad = torch.randn(shape, dtype=torch.float64)
    ours = torch.autograd.grad(prelu(x), (x, prelu.weight), grad)
    reference = torch.autograd.grad(F.prelu(x, prelu.weight), (x, prelu.weight), grad)
    assert torch.equal(prelu(x), F.prelu(x, prelu.weight))
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(prelu, (torch.randn(shape, dtype=torch.float64, requires_grad=True), ))


def test_vectorized_prelu_under_bf16_channels_last_and_without_grad():
    torch.manual_seed(0)
    prelu = VectorizedPReLU(8, init=0.25)
    x = torch.randn(2, 8, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(2, 8, 12, 12)
    ours = torch.autograd.grad(prelu(x), (x, prelu.weight), grad)
    reference = torch.autograd.grad(F.prelu(x, prelu.weight), (x, prelu.weight), grad)
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    native = nn.PReLU(8, init=0.25)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, native_out = prelu(x), native(x)
    assert out.dtype == native_out.dtype and torch.equal(out, native_out)
    bf16 = torch.autograd.grad(out, (x, prelu.weight), grad.to(out.dtype))
    native_bf16 = torch.autograd.grad(native_out, (x, native.weight), grad.to(out.dtype))
    for mine, theirs in zip(bf16, native_bf16, strict=True):
        assert mine.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(mine, theirs, rtol=0.02, atol=0.02)
    with torch.no_grad():
        assert prelu(x).grad_fn is None and torch.equal(prelu(x), F.prelu(x, prelu.weight))
    assert list(prelu.state_dict()) == ['weight'] and isinstance(prelu, nn.PReLU)


def test_every_paper_step_function_uses_the_vectorized_prelu():
    from oisr_basicsr.archs.oisr_arch import build_paper_model

    for model in ('LF-s', 'RK2-s', 'RK3'):
        with torch.device('meta'):
            net = build_paper_model(model, 2)
        prelus = [type(module) for module in net.modules() if isinstance(module, nn.PReLU)]
        assert prelus and set(prelus) == {VectorizedPReLU}


@pytest.mark.parametrize('scheme,g_variant', [('lf', 'v2'), ('rk2', 'v3'), ('rk3', 'v2'), ('kutta3', 'v1')])
def test_blocks_keep_the_autocast_dtype_and_the_fp32_values(scheme, g_variant):
    torch.manual_seed(0)
    block = make_ode_block(scheme, [make_step_function(g_variant, 8) for _ in range(steps_per_block(scheme))])
    x = torch.randn(2, 8, 10, 10)
    reference = block(x)
    assert reference.dtype == torch.float32
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = block(x.bfloat16())
    # The learnable fp32 scalars do not promote the state back to fp32.
    assert out.dtype == torch.bfloat16
    assert ((out.float() - reference).norm() / reference.norm()).item() < 0.02


@pytest.mark.parametrize(('scheme', 'g_variant'), [('lf', 'v2'), ('rk2', 'v3'), ('rk3', 'v1'), ('kutta3', 'edsr')])
def test_block_gradients_match_finite_differences(scheme, g_variant):
    # The blocks fold scalars into convolutions, add in place and have their own PReLU backward: float64
    # finite differences check the gradient of the input, every weight and every block scalar.
    torch.manual_seed(0)
    block = make_ode_block(scheme, [make_step_function(g_variant, 2) for _ in range(steps_per_block(scheme))])
    block = block.double()
    names = [name for name, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in block.parameters())
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)

    def forward(x, *params):
        return torch.func.functional_call(block, dict(zip(names, params, strict=True)), (x, ))

    assert torch.autograd.gradcheck(forward, (x, *params), fast_mode=True)
