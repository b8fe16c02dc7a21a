"""The shipped option files: in sync with the model table, valid, and the paper's recipe."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from oisr_basicsr.archs.oisr_arch import PAPER_MODELS
from oisr_basicsr.complexity import network_complexity
from oisr_basicsr.options import OptionError, read_option_file
from oisr_basicsr.startup import validate_options

OPTIONS = REPO_ROOT / 'options'
PAPER_FILES = [(model, scale) for model in PAPER_MODELS for scale in (2, 3, 4)]


def _load(name: str) -> dict:
    return read_option_file(OPTIONS / name)


@pytest.mark.slow
def test_option_files_match_the_generator():
    result = subprocess.run([sys.executable, 'scripts/generate_options.py', '--check'], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(('model', 'scale'), PAPER_FILES)
def test_paper_train_options_follow_the_recipe(model, scale):
    opt = _load(f'train_OISR_{model.replace("-", "_")}_x{scale}.yml')
    validate_options(opt, check_files=False)
    train_set = opt['datasets']['train']
    assert opt['scale'] == scale and opt['network_g']['upscale'] == scale
    assert train_set['gt_size'] == 48 * scale and train_set['batch_size_per_gpu'] == 16
    assert train_set['use_hflip'] and train_set['use_rot']
    assert opt['train']['total_iter'] == 800_000
    assert opt['train']['scheduler'] == {'type': 'MultiStepLR', 'milestones': [250_000, 500_000, 750_000],
                                         'gamma': 0.5}
    assert opt['train']['optim_g']['lr'] == 1e-4 and opt['train']['pixel_opt']['type'] == 'L1Loss'
    assert opt['datasets']['val']['name'] == 'Set5'
    psnr = opt['val']['metrics']['psnr']
    assert psnr['crop_border'] == scale and psnr['test_y_channel'] is True
    for key, value in PAPER_MODELS[model].items():
        assert opt['network_g'][key] == value


@pytest.mark.parametrize(('model', 'scale'), PAPER_FILES)
def test_paper_test_options_cover_the_benchmarks(model, scale):
    name = f'OISR_{model.replace("-", "_")}_x{scale}'
    opt = _load(f'test_{name}.yml')
    validate_options(opt, check_files=False)
    assert [d['name'] for d in opt['datasets'].values()] == ['Set5', 'Set14', 'B100', 'Urban100']
    assert opt['path']['pretrain_network_g'] == f'experiments/{name}/models/net_g_latest.pth'
    assert opt['network_g'] == _load(f'train_{name}.yml')['network_g']


def test_ablation_variants_have_equal_conv_count():
    counts = {}
    for path in sorted(OPTIONS.glob('train_ablation_*_x2.yml')):
        opt = _load(path.name)
        validate_options(opt, check_files=False)
        counts[path.stem] = network_complexity(opt['network_g'], scale=2)['conv_params']
    assert len(counts) == 7
    assert set(counts.values()) == {1_369_859}  # EDSR-s, as in the paper's Table 1


def test_validation_names_the_bad_key():
    opt = _load('train_OISR_LF_s_x2.yml')
    opt['network_g']['upscale'] = 3
    with pytest.raises(OptionError, match='network_g.upscale is 3 but scale is 2'):
        validate_options(opt, check_files=False)
    opt = _load('train_OISR_LF_s_x2.yml')
    opt['network_g']['type'] = 'OISRNet'
    with pytest.raises(OptionError, match=r"network_g.type: not a registered architecture; got 'OISRNet'; did you "
                                          r'mean OISR\?'):
        validate_options(opt, check_files=False)
