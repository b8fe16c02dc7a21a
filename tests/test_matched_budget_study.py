"""The matched-budget study script: its grid, its summary statistics and its refusals (no training here)."""

import pytest
from conftest import REPO_ROOT

from benchmarks import matched_budget_study as study


def test_summary_gives_mean_and_sample_std_over_seeds():
    records = [{'model': 'OISR-LF-s', 'init': 'near_identity', 'lr': 1e-4, 'seed': seed, 'iter': 300,
                'psnr': {'Set5': value}} for seed, value in ((0, 34.0), (1, 34.5), (2, 35.5))]
    records.append({'model': 'Bicubic', 'init': '-', 'lr': 0.0, 'seed': 0, 'iter': 0, 'psnr': {'Set5': 33.68}})
    lines = study.summarise(records, ['Set5']).splitlines()
    # mean 34.667, sample standard deviation sqrt(((-2/3)^2 + (-1/6)^2 + (5/6)^2) / 2) = 0.764
    assert '| OISR-LF-s | near_identity | 0.0001 | 300 | 0 1 2 | 34.67 ± 0.76 |' in lines
    assert lines.index('| Bicubic | - | 0 | 0 | 0 | 33.68 |') < lines.index(
        '| OISR-LF-s | near_identity | 0.0001 | 300 | 0 1 2 | 34.67 ± 0.76 |')


def test_runs_differ_only_in_init_seed_and_learning_rate(tmp_path):
    args = study.parse_args(['--workdir', str(tmp_path), '--train-dirs', str(tmp_path), '--data-root', str(tmp_path)])
    paper = study.study_train_options('OISR-LF-s', 'paper', 1e-4, 0, tmp_path, args)
    near = study.study_train_options('OISR-LF-s', 'near_identity', 5e-4, 2, tmp_path, args)
    assert paper['network_g']['block_init'] == 'paper' and near['network_g']['block_init'] == 'near_identity'
    assert (paper['manual_seed'], near['manual_seed']) == (0, 2)
    assert (paper['train']['optim_g']['lr'], near['train']['optim_g']['lr']) == (1e-4, 5e-4)
    for options in (paper, near):
        del options['name'], options['manual_seed'], options['train']['optim_g']['lr']
        del options['network_g']['block_init']
    assert paper == near
    assert study.evaluation_points(12000, 5000) == [5000, 10000, 12000]


@pytest.mark.parametrize('argv,message', [
    (['--workdir', str(REPO_ROOT / 'scratch')], 'is inside the repository'),
    (['--patch', '48', '--crop-size', '72'], '--crop-size 72 is smaller than the HR patch 96'),
])
def test_bad_settings_are_refused_naming_the_option(tmp_path, capsys, argv, message):
    base = {'--workdir': str(tmp_path), '--train-dirs': str(tmp_path), '--data-root': str(tmp_path)}
    for key, value in zip(argv[::2], argv[1::2], strict=True):
        base[key] = value
    with pytest.raises(SystemExit) as exit_info:
        study.parse_args([item for pair in base.items() for item in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
