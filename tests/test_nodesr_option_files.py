"""The shipped NODE-SR option files: generated, valid, and the paper's recipe and protocol."""

import pytest
from basicsr.archs import build_network
from basicsr.utils.registry import MODEL_REGISTRY
from conftest import REPO_ROOT

from oisr_basicsr.options import OptionError, parse_ode_options, read_option_file
from oisr_basicsr.startup import validate_options
from oisr_basicsr.templates import nodesr_recipes

OPTIONS = REPO_ROOT / 'options'
PAPER_TRAIN_SCALES = [round(1 + 0.1 * k, 1) for k in range(1, 31)]  # 1.1, 1.2, ..., 4.0 (paper Sec. 3.1)
RECIPE = {'VDSR': dict(gt_size=200, batch=16), 'RDN': dict(gt_size=130, batch=8)}


def _load(name: str) -> dict:
    """The option file, validated (without its data folders, which do not exist here) and its network built."""
    opt = read_option_file(OPTIONS / name)
    assert opt['model_type'] in MODEL_REGISTRY
    validate_options(opt, check_files=False)
    build_network(dict(opt['network_g']))
    return opt


def test_option_files_match_the_generator(capsys):
    assert nodesr_recipes.main(['--check']) == 0, capsys.readouterr().err


@pytest.mark.parametrize('backbone', RECIPE)
def test_train_options_follow_the_paper(backbone):
    opt = _load(f'train_NODESR_{backbone}.yml')
    assert 'scale' not in opt  # BasicSR would copy it into every dataset
    assert opt['model_type'] == 'NODESRModel' and opt['network_g']['type'] == f'NODE{backbone}'
    train_set = opt['datasets']['train']
    assert train_set['type'] == 'ContinuousScalePairedDataset'
    assert train_set['dataroot_gt'] == 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb'
    assert train_set['gt_size'] == RECIPE[backbone]['gt_size']
    assert train_set['batch_size_per_gpu'] == RECIPE[backbone]['batch']
    assert train_set['use_hflip'] and train_set['use_rot']
    assert train_set['scales'] == PAPER_TRAIN_SCALES
    optim = opt['train']['optim_g']
    assert (optim['type'], optim['lr'], optim['betas'], optim['eps']) == ('Adam', 1e-4, [0.9, 0.999], 1e-8)
    assert opt['train']['scheduler'] == {'type': 'MultiStepLR', 'gamma': 0.5,
                                         'milestones': [100_000, 200_000, 300_000, 400_000, 500_000]}
    assert opt['train']['total_iter'] == 600_000 and opt['train']['pixel_opt']['type'] == 'L1Loss'
    ode = parse_ode_options(opt['ode'])
    assert ode.solver == 'rk4' and ode.gradient == 'checkpoint'
    val_sets = [d for phase, d in opt['datasets'].items() if phase.startswith('val')]
    assert len(val_sets) >= 2 and all(d['dataroot_gt'] == 'datasets/B100/HR' for d in val_sets)
    assert len({d['name'] for d in val_sets}) == len(val_sets)  # BasicSR logs each under its name


@pytest.mark.parametrize('backbone', RECIPE)
def test_b100_test_options_cover_every_scale_of_table_2(backbone):
    opt = _load(f'test_NODESR_{backbone}_B100.yml')
    assert [d['test_scale'] for d in opt['datasets'].values()] == PAPER_TRAIN_SCALES
    assert [d['name'] for d in opt['datasets'].values()] == [f'B100_x{t}' for t in PAPER_TRAIN_SCALES]
    assert opt['network_g'] == _load(f'train_NODESR_{backbone}.yml')['network_g']
    assert opt['path']['pretrain_network_g'] == f'experiments/NODESR_{backbone}/models/net_g_latest.pth'
    assert all(m['crop_border'] == 'scale' and m['test_y_channel'] for m in opt['val']['metrics'].values())


@pytest.mark.parametrize('backbone', RECIPE)
def test_benchmark_options_cover_table_1_and_large_scales(backbone):
    opt = _load(f'test_NODESR_{backbone}_benchmarks.yml')
    pairs = {(d['dataroot_gt'], d['test_scale']) for d in opt['datasets'].values()}
    assert pairs == {(f'datasets/{b}/HR', float(s)) for b in ('Set14', 'B100', 'Urban100') for s in (2, 3, 4, 6, 8)}


def test_bad_ode_option_is_refused_before_anything_runs():
    opt = _load('train_NODESR_VDSR.yml')
    opt['ode']['solver'] = 'rk9'
    with pytest.raises(OptionError, match='ode.solver'):
        validate_options(opt, check_files=False)
