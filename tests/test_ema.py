"""EMA (``train.ema_decay``): after every optimiser step ``net_g_ema = d net_g_ema + (1 - d) net_g``, as in BasicSR's
``SRModel``, for ``AcceleratedSRModel`` and ``NODESRModel``; and the recipe of docs/training.md through the entry
points."""

import re

import pytest
import torch
import yaml
from conftest import REPO_ROOT, run_entry_point, tiny_train_options
from torch import nn

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.models.sr_model import SRModel

from oisr_basicsr.inference.loading import build_network_from_options
from oisr_basicsr.models.accelerated_sr_model import AcceleratedSRModel
from oisr_basicsr.models.node_solver import integrate
from oisr_basicsr.models.nodesr_model import NODESRModel
from oisr_basicsr.options import parse_ode_options

DECAY = 0.9
STEPS = 4
ODE = {'solver': 'rk4', 'num_steps': 1}
NETWORKS = {'AcceleratedSRModel': {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf'},
            'NODESRModel': {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3}}
# A float32 parameter of the average against d old + (1 - d) new computed in float64: the rounding of two operations.
ROUNDING = dict(rtol=1e-6, atol=1e-7)

pytestmark = pytest.mark.usefixtures('one_thread')


def model_options(model_type: str) -> dict:
    opt = {'name': 'ema', 'model_type': model_type, 'scale': 2, 'num_gpu': 0, 'is_train': True, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(NETWORKS[model_type]),
           'path': {'pretrain_network_g': None, 'strict_load_g': True},
           # A learning rate large enough that every step moves the weights far beyond the rounding.
           'train': {'ema_decay': DECAY, 'optim_g': {'type': 'Adam', 'lr': 1e-2},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                     'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    if model_type == 'NODESRModel':
        opt['ode'] = ODE
    return opt


def batches(model_type: str) -> list[dict]:
    """Training batches: LR and HR for OISR x2; for NODE-SR, patches that are ``I(t0)`` and their scales."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(STEPS):
        gt = torch.rand(2, 3, 16, 16, generator=generator)
        if model_type == 'NODESRModel':
            items.append({'lq': torch.rand(2, 3, 16, 16, generator=generator), 'gt': gt,
                          'scale': torch.tensor([2.0, 3.5])})
        else:
            items.append({'lq': torch.rand(2, 3, 8, 8, generator=generator), 'gt': gt})
    return items


class SolveAsNetwork(nn.Module):
    """NODE-SR's solve as the one-argument network BasicSR's ``SRModel`` calls: ``net_g(lq)``, ``lq`` being ``I(t0)``.

    Args:
        dynamics: ``f(I, t)``.
        ode: The ``ode:`` block.
    """

    def __init__(self, dynamics: nn.Module, ode: dict):
        super().__init__()
        self.dynamics = dynamics
        self.ode = parse_ode_options(ode)
        self.t0: torch.Tensor | None = None  # the batch's scales, set before each step

    def forward(self, i0: torch.Tensor) -> torch.Tensor:
        return integrate(self.dynamics, i0, self.t0, self.ode).final


def srmodel_reference(model_type: str) -> dict[str, torch.Tensor]:
    """``net_g_ema`` of BasicSR's own SRModel after the same training from the same seed."""
    torch.manual_seed(0)
    reference = SRModel(model_options(model_type))
    if model_type == 'NODESRModel':
        # Wrapped after SRModel built the optimiser on the dynamics' parameters; the average then pairs the
        # wrappers' parameters by name.
        reference.net_g = SolveAsNetwork(reference.net_g, ODE)
        reference.net_g_ema = SolveAsNetwork(reference.net_g_ema, ODE)
    for step, batch in enumerate(batches(model_type)):
        reference.feed_data(batch)
        if model_type == 'NODESRModel':
            reference.net_g.t0 = batch['scale']
        reference.optimize_parameters(step + 1)
    ema = reference.net_g_ema
    return (ema.dynamics if model_type == 'NODESRModel' else ema).state_dict()


@pytest.mark.parametrize('model_class', [AcceleratedSRModel, NODESRModel], ids=lambda cls: cls.__name__)
def test_ema_follows_its_decay_step_by_step_and_equals_srmodels(model_class):
    model_type = model_class.__name__
    torch.manual_seed(0)
    model = model_class(model_options(model_type))
    average = dict(model.net_g_ema.named_parameters())
    trained = dict(model.get_bare_model(model.net_g).named_parameters())
    assert average.keys() == trained.keys()
    assert all(torch.equal(average[name], trained[name]) for name in average)  # starts as a copy
    for step, batch in enumerate(batches(model_type)):
        before = {name: value.detach().double().clone() for name, value in average.items()}
        model.feed_data(batch)
        model.optimize_parameters(step + 1)
        moved = 0
        for name, value in average.items():
            expected = DECAY * before[name] + (1 - DECAY) * trained[name].detach().double()
            torch.testing.assert_close(value.detach().double(), expected, **ROUNDING,
                                       msg=lambda text, name=name, step=step: f'step {step + 1}, {name}: {text}')
            moved += int((value.detach().double() - before[name]).abs().max() > 1e-5)
        assert moved, f'step {step + 1}: no averaged parameter moved'
    expected = srmodel_reference(model_type)
    ema = model.net_g_ema.state_dict()
    assert ema.keys() == expected.keys()
    assert all(torch.equal(ema[name], expected[name]) for name in ema)


def documented_recipe() -> tuple[dict, dict]:
    """The two YAML blocks of docs/training.md's EMA section: the training file's and the test file's."""
    text = (REPO_ROOT / 'docs' / 'training.md').read_text()
    section = text.split('## Weight averaging (EMA)\n', 1)[1].split('\n## ', 1)[0]
    training, testing = (yaml.safe_load(block) for block in re.findall(r'```yaml\n(.*?)```', section, flags=re.S))
    return training, testing


@pytest.mark.slow
def test_documented_recipe_trains_an_average_and_tools_load_it(tmp_path, paired_folders, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    training, testing = documented_recipe()
    decay = training['train']['ema_decay']
    assert 0 < decay < 1
    options = tiny_train_options(*paired_folders, 'ema_recipe', total_iter=3)
    options['model_type'] = 'AcceleratedSRModel'
    options['train'].update(training['train'])
    options['logger']['save_checkpoint_freq'] = 1
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    models = tmp_path / 'experiments' / 'ema_recipe' / 'models'
    saved = [torch.load(models / f'net_g_{step}.pth') for step in (1, 2, 3)]
    for step in (1, 2):
        previous, current = saved[step - 1], saved[step]
        for name, value in current['params_ema'].items():
            expected = decay * previous['params_ema'][name].double() + (1 - decay) * current['params'][name].double()
            torch.testing.assert_close(value.double(), expected, **ROUNDING)
    assert any(not torch.equal(saved[2]['params'][name], value) for name, value in saved[2]['params_ema'].items())

    # The test file's path block loads the average, as the tools read it.
    path = {**testing['path'], 'pretrain_network_g': str(models / 'net_g_latest.pth')}
    net = build_network_from_options({'network_g': options['network_g'], 'path': path})
    loaded = net.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in saved[2]['params_ema'].items())
