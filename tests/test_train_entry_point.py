"""The real entry points on tiny data: train, validate with BasicSR's metrics, save, resume, test."""

import re

import pytest
import torch
from conftest import run_entry_point, tiny_train_options

NAME = 'tiny_OISR_LF_x2'


def _log(experiment_dir) -> str:
    return '\n'.join(path.read_text() for path in sorted(experiment_dir.glob('train_*.log')))


@pytest.mark.slow
def test_train_validate_save_resume_and_test(tmp_path, paired_folders):
    hr_dir, lr_dir = paired_folders
    experiment = tmp_path / 'experiments' / NAME

    first = run_entry_point('oisr_basicsr.train', tiny_train_options(hr_dir, lr_dir, NAME, total_iter=4), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert {p.name for p in (experiment / 'models').iterdir()} == {
        'net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth'}
    assert {p.name for p in (experiment / 'training_states').iterdir()} == {'2.state', '4.state'}
    assert (tmp_path / 'tb_logger' / NAME).is_dir()
    log = _log(experiment)
    psnr = [float(v) for v in re.findall(r'# psnr: ([0-9.]+)', log)]
    assert len(psnr) == 3 and all(10 < v < 60 for v in psnr)  # iters 2, 4 and the final validation

    resumed = run_entry_point('oisr_basicsr.train', tiny_train_options(hr_dir, lr_dir, NAME, total_iter=6), tmp_path,
                              '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = _log(experiment)
    assert re.search(r'Resuming training from epoch: \d+, iter: 4\.', log)
    iters_logged = [int(v) for v in re.findall(r'iter:\s+(\d+), lr', log)]
    assert iters_logged == [1, 2, 3, 4, 5, 6]  # no iteration repeated or skipped across the restart
    state = torch.load(experiment / 'training_states' / '6.state', map_location='cpu')
    assert state['iter'] == 6
    # BasicSR steps the scheduler from iteration 2 on, so it has stepped 5 times by iteration 6, and
    # the halving at its step 3 must have survived the restart.
    assert state['schedulers'][0]['last_epoch'] == 5
    assert state['optimizers'][0]['param_groups'][0]['lr'] == 5e-4

    test_opt = {
        'name': f'{NAME}_test', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny_test', 'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir),
                                'dataroot_lq': str(lr_dir), 'io_backend': {'type': 'disk'}}},
        'network_g': tiny_train_options(hr_dir, lr_dir, NAME, 1)['network_g'],
        'path': {'pretrain_network_g': str(experiment / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
    }
    tested = run_entry_point('oisr_basicsr.test', test_opt, tmp_path)
    assert tested.returncode == 0, tested.stderr[-3000:]
    results = tmp_path / 'results' / f'{NAME}_test'
    assert len(list((results / 'visualization' / 'tiny_test').glob('*.png'))) == 4
    test_log = next(results.glob('test_*.log')).read_text()
    assert re.search(r'# psnr: [0-9.]+', test_log)


def test_wrong_upscale_is_refused_before_training(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, NAME, total_iter=2)
    options['network_g']['upscale'] = 4
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 2
    assert 'error: network_g.upscale is 4 but scale is 2' in result.stderr
    assert not (tmp_path / 'experiments').exists()


def test_unknown_network_key_is_named(tmp_path, paired_folders):
    options = tiny_train_options(*paired_folders, NAME, total_iter=2)
    options['network_g']['num_blocks'] = 3
    result = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert result.returncode == 2
    assert 'error: network_g.num_blocks: unknown key; did you mean num_block?\n' in result.stderr
