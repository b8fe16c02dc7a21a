"""NODESRModel and its ODE integration: bicubic start, per-sample t0, solver order, gradients, NFE, options."""

import math

import pytest
import torch
from torch import nn

from oisr_basicsr.data.resize import upscale_lr
from oisr_basicsr.models.node_solver import ODEOptions, integrate
from oisr_basicsr.models.nodesr_model import NODESRModel
from oisr_basicsr.options import parse_ode_options

TINY_VDSR = {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3}


pytestmark = pytest.mark.usefixtures('one_thread')


def make_model(ode: dict | None = None, network: dict | None = None, train: bool = False) -> NODESRModel:
    opt = {
        'name': 'unit', 'model_type': 'NODESRModel', 'num_gpu': 0, 'is_train': train, 'dist': False, 'rank': 0,
        'world_size': 1, 'network_g': dict(network or TINY_VDSR), 'ode': ode,
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
    }
    if train:
        opt['train'] = {'optim_g': {'type': 'Adam', 'lr': 1e-3},
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}
    return NODESRModel(opt)


def randomise_last_conv(net: nn.Module, std: float = 0.05) -> None:
    torch.manual_seed(1)
    nn.init.normal_(net.conv_last.weight, std=std)
    nn.init.normal_(net.conv_last.bias, std=std)


class Linear(nn.Module):
    """``f(I, t) = a I``: ``I(1) = I(t0) exp(a (1 - t0))``."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a
        self.calls = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.a * x


class Cubic(nn.Module):
    """``f(I, t) = t^3`` per sample: ``I(1) = I(t0) + (1 - t0^4) / 4`` (needs the true t of every sample)."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (t**3).to(x.dtype).view(-1, 1, 1, 1).expand_as(x)


def test_zero_dynamics_is_bicubic_upscaling():
    torch.manual_seed(0)
    model = make_model({'solver': 'rk4', 'num_steps': 3})
    lq, gt = torch.rand(1, 3, 10, 14), torch.rand(1, 3, 25, 35)
    model.feed_data({'lq': lq, 'gt': gt, 'scale': torch.tensor([2.5])})
    model.test()
    bicubic = upscale_lr(lq, 2.5, (25, 35))
    assert model.output.shape == gt.shape
    torch.testing.assert_close(model.output, bicubic, rtol=0, atol=0)
    # Without gt the size is floor(h t) x floor(w t), and the states are all the same image.
    solution = model.super_resolve(lq, 2.5, return_states=True)
    assert solution.final.shape == (1, 3, 25, 35)
    assert solution.states.shape == (4, 1, 3, 25, 35)
    assert torch.equal(solution.states[-1], solution.states[0])


def test_training_patch_is_taken_as_the_initial_state():
    model = make_model({'solver': 'euler', 'num_steps': 1})
    patch = torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': patch, 'gt': torch.rand(2, 3, 16, 16), 'scale': torch.tensor([1.5, 3.0])})
    assert model.i0 is model.lq


def test_mixed_t0_batch_equals_each_sample_alone():
    torch.manual_seed(0)
    model = make_model({'solver': 'rk4', 'num_steps': 3})
    net = model.net_g
    randomise_last_conv(net)
    i0 = torch.rand(4, 3, 12, 12)
    t0 = torch.tensor([1.0, 1.5, 2.5, 4.0])
    for options in (ODEOptions(solver='rk4', num_steps=3), ODEOptions(solver='midpoint', step_size=0.5)):
        with torch.no_grad():
            batch = integrate(net, i0, t0, options).final
            alone = torch.cat([integrate(net, i0[i:i + 1], t0[i:i + 1], options).final for i in range(4)])
        torch.testing.assert_close(batch, alone, rtol=0, atol=1e-5)
        assert torch.equal(batch[0], i0[0])  # t0 = 1 is the target already
        assert (batch[1:] - i0[1:]).abs().amax() > 1e-3  # the others did move


def test_dynamics_see_each_samples_true_time():
    # RK4 integrates a cubic in t exactly, so any error in t(s) = t0 + s (1 - t0) shows.
    i0 = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    t0 = torch.tensor([1.5, 2.5, 4.0])
    final = integrate(Cubic(), i0, t0, ODEOptions(solver='rk4', num_steps=1)).final
    expected = ((1 - t0.double()**4) / 4).view(-1, 1, 1, 1).expand_as(i0)
    torch.testing.assert_close(final, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(('solver', 'order'), [('euler', 1), ('midpoint', 2), ('rk4', 4)])
def test_solver_converges_at_its_order(solver, order):
    a, t0 = 0.8, torch.tensor([3.0, 2.0])
    i0 = torch.ones(2, 1, 1, 1, dtype=torch.float64)
    exact = torch.exp(a * (1 - t0.double())).view(-1, 1, 1, 1)
    errors = [(integrate(Linear(a), i0, t0, ODEOptions(solver=solver, num_steps=n)).final - exact).abs().amax().item()
              for n in (4, 8, 16, 32)]
    observed = [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:], strict=False)]
    assert abs(observed[-1] - order) < 0.15, observed


def test_nfe_is_steps_times_stages_and_skips_t_equal_one():
    net = Linear(0.5)
    i0 = torch.rand(3, 1, 4, 4)
    solution = integrate(net, i0, torch.tensor([1.0, 2.0, 3.5]), ODEOptions(solver='rk4', num_steps=5))
    assert solution.nfe == net.calls == 5 * 4
    # step_size: 2.0 takes 2 steps of 0.5, 3.5 takes 5; float32 1.1 takes exactly one step of 0.1.
    solution = integrate(net, i0, torch.tensor([2.0, 3.5, 1.1]), ODEOptions(solver='rk4', step_size=0.5))
    assert solution.nfe == (2 + 5 + 1) * 4
    solution = integrate(net, i0, torch.tensor([1.1, 1.1, 1.1]), ODEOptions(solver='euler', step_size=0.1))
    assert solution.nfe == 1
    assert integrate(net, i0, 1.0, ODEOptions()).nfe == 0


def test_training_step_logs_nfe_and_updates_the_network():
    model = make_model({'solver': 'rk4', 'num_steps': 2}, train=True)
    gt = torch.rand(2, 3, 16, 16)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data({'lq': gt.flip(-1), 'gt': gt, 'scale': torch.tensor([2.0, 3.0])})
    model.optimize_parameters(1)
    assert model.log_dict['nfe'] == 2 * 4
    assert model.log_dict['l_pix'] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, model.net_g.parameters(), strict=True))


@pytest.mark.parametrize('mode', ['adjoint', 'checkpoint'])
def test_memory_saving_gradients_equal_backprop(mode):
    torch.manual_seed(0)
    model = make_model(network={'type': 'NODEVDSR', 'num_feat': 6, 'num_layer': 3})
    net = model.net_g.double()
    randomise_last_conv(net, std=0.2)
    i0, target = torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    t0 = torch.tensor([2.0, 3.5])

    def gradients(gradient: str, num_steps: int) -> torch.Tensor:
        net.zero_grad()
        final = integrate(net, i0, t0, ODEOptions(solver='rk4', num_steps=num_steps, gradient=gradient)).final
        (final - target).abs().mean().backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    def relative_error(num_steps: int) -> float:
        reference = gradients('backprop', num_steps)
        assert reference.norm() > 0
        return ((gradients(mode, num_steps) - reference).norm() / reference.norm()).item()

    if mode == 'checkpoint':
        assert relative_error(4) < 1e-12  # the same computation, recomputed
    else:
        # The adjoint solves the continuous adjoint ODE backwards on the same grid, so it differs from backprop's
        # exact gradient of the discretisation by the discretisation error, which shrinks with the step.
        coarse, fine = relative_error(2), relative_error(8)
        assert fine < 1e-3 and fine < coarse / 2, (coarse, fine)


def test_adaptive_solver_meets_its_tolerance():
    a, t0 = 0.8, torch.tensor([3.0, 2.0])
    i0 = torch.ones(2, 1, 1, 1)
    exact = torch.exp(a * (1 - t0)).view(-1, 1, 1, 1)
    loose = integrate(Linear(a), i0, t0, ODEOptions(solver='dopri5', rtol=1e-3, atol=1e-4))
    tight = integrate(Linear(a), i0, t0, ODEOptions(solver='dopri5', rtol=1e-6, atol=1e-7))
    assert (loose.final - exact).abs().amax() < 1e-3
    assert (tight.final - exact).abs().amax() < 1e-5
    assert tight.nfe > loose.nfe


def test_states_follow_the_solver_steps():
    i0 = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    solution = integrate(Linear(1.0), i0, 3.0, ODEOptions(solver='rk4', num_steps=4), return_states=True)
    torch.testing.assert_close(solution.times, torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0]))
    expected = torch.exp(solution.times.double() - 3.0).view(-1, 1, 1, 1, 1).expand_as(solution.states)
    torch.testing.assert_close(solution.states, expected, rtol=3e-3, atol=0)  # RK4 error at h = 0.5
    assert torch.equal(solution.states[-1], solution.final)
    adaptive = integrate(Linear(1.0), i0, 3.0, ODEOptions(solver='dopri5'), return_states=True)
    assert adaptive.times[0] == 3.0 and adaptive.times[-1] == 1.0 and len(adaptive.times) >= 3
    assert torch.all(adaptive.times[1:] < adaptive.times[:-1])


@pytest.mark.parametrize(('ode', 'message'), [
    pytest.param({'solver': 'rk5'}, r"^ode\.solver: not an allowed value; got 'rk5'; allowed: 'euler', 'midpoint', ",
                 id='solver'),
    pytest.param({'gradient': 'adjoin'}, r"^ode\.gradient: not an allowed value; got 'adjoin'; allowed: 'backprop', "
                                         r"'adjoint' or 'checkpoint'$", id='gradient'),
    pytest.param({'num_steps': 0}, r'^ode\.num_steps: out of range; got 0; allowed: > 0$', id='num-steps-zero'),
    pytest.param({'num_steps': 2.5}, r'^ode\.num_steps: not an integer; got 2\.5; allowed: an integer$',
                 id='num-steps-fraction'),
    pytest.param({'step_size': -0.1}, r'^ode\.step_size: out of range; got -0\.1; allowed: > 0$',
                 id='step-size-negative'),
    pytest.param({'num_steps': 4, 'step_size': 0.1}, r'^ode\.num_steps: given together with step_size; give one of '
                                                     r'them$', id='both-step-keys'),
    pytest.param({'solver': 'rk4', 'rtol': 1e-3}, r'^ode\.rtol: for the adaptive solvers \(dopri5, .*\) only; solver '
                                                  r'rk4 takes num_steps or step_size$', id='rtol-with-fixed-step'),
    pytest.param({'solver': 'dopri5', 'num_steps': 4}, r'^ode\.num_steps: for the fixed-step solvers \(euler, .*\) '
                                                       r'only; solver dopri5 chooses its own steps from rtol and atol$',
                 id='num-steps-with-adaptive'),
    pytest.param({'solver': 'dopri5', 'atol': 0}, r'^ode\.atol: out of range; got 0; allowed: > 0$', id='atol-zero'),
    pytest.param({'steps': 4}, r'^ode\.steps: unknown key; did you mean step_size\?$', id='unknown-key'),
])
def test_bad_ode_options_name_the_key(ode, message):
    with pytest.raises(ValueError, match=message):
        parse_ode_options(ode)
    with pytest.raises(ValueError, match=message):
        make_model(ode)


def test_yaml_exponent_strings_are_numbers():
    # YAML 1.1 reads 1e-3 without a dot as a string.
    options = parse_ode_options({'solver': 'dopri5', 'rtol': '1e-3', 'atol': '1e-4'})
    assert (options.rtol, options.atol) == (1e-3, 1e-4)
    with pytest.raises(ValueError, match=r"^ode\.rtol: not a number; got 'tight'; allowed: a number$"):
        parse_ode_options({'solver': 'dopri5', 'rtol': 'tight'})


def test_scale_below_one_is_refused():
    with pytest.raises(ValueError, match='at least 1'):
        integrate(Linear(1.0), torch.ones(1, 1, 2, 2), 0.5, ODEOptions())


def test_defaults_are_one_rk4_step_and_loose_tolerances():
    options = parse_ode_options(None)
    assert (options.solver, options.steps_for(3.7)) == ('rk4', 1)  # one step from t0 to 1
    adaptive = parse_ode_options({'solver': 'dopri5'})
    assert (adaptive.rtol, adaptive.atol) == (1e-3, 1e-4)  # not torchdiffeq's 1e-7 / 1e-9
