"""safetensors checkpoints: written by training on request, read by resume, test, infer and the converter without
any unpickling; wrong shapes and non-finite tensors refused naming the tensor."""

import re

import cv2
import numpy as np
import pytest
import torch
from conftest import run_entry_point, tiny_train_options
from safetensors import safe_open
from safetensors.torch import save_file

from oisr_basicsr.archs.oisr_arch import OISR, build_paper_model
from oisr_basicsr.checkpoints.conversion import CheckpointError as ConversionError
from oisr_basicsr.checkpoints.conversion import authors_key_map, convert_checkpoint
from oisr_basicsr.checkpoints.io import NonFiniteWeightsError, atomic_save, check_finite, safe_load
from oisr_basicsr.checkpoints.weights import load_weights
from oisr_basicsr.inference.loading import CheckpointError, build_network_from_options
from oisr_cli.commands import infer

NAME = 'tiny_safetensors'


def _network_args(options: dict) -> dict:
    return {key: value for key, value in options['network_g'].items() if key != 'type'}


@pytest.mark.slow
def test_train_resume_test_infer_round_trip(tmp_path, paired_folders):
    hr_dir, lr_dir = paired_folders
    options = tiny_train_options(hr_dir, lr_dir, NAME, total_iter=2)
    options['logger']['checkpoint_format'] = 'safetensors'
    options['logger']['use_tb_logger'] = False
    options['train']['ema_decay'] = 0.9
    first = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    models = tmp_path / 'experiments' / NAME / 'models'
    assert {p.name for p in models.iterdir()} == {'net_g_2.safetensors', 'net_g_latest.safetensors'}

    # Resuming finds net_g_2.safetensors where BasicSR looks for net_g_2.pth.
    options['train']['total_iter'] = 4
    resumed = run_entry_point('oisr_basicsr.train', options, tmp_path, '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = '\n'.join(p.read_text() for p in sorted((tmp_path / 'experiments' / NAME).glob('train_*.log')))
    assert f'Loading OISR model from {models / "net_g_2.safetensors"}' in log
    assert {p.name for p in models.iterdir()} == {'net_g_2.safetensors', 'net_g_4.safetensors',
                                                  'net_g_latest.safetensors'}
    latest = models / 'net_g_latest.safetensors'
    with safe_open(str(latest), framework='pt') as file:
        assert file.metadata() == {'param_keys': 'params,params_ema'}
    checkpoint = safe_load(latest)
    assert set(checkpoint) == {'params', 'params_ema'}
    assert set(checkpoint['params']) == set(OISR(**_network_args(options)).state_dict())
    final_psnr = float(re.findall(r'# psnr: ([0-9.]+)', log)[-1])

    # The test entry point measures the EMA weights as the final validation did, to the logged precision.
    test_opt = {
        'name': f'{NAME}_test', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny_test', 'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir),
                                'dataroot_lq': str(lr_dir), 'io_backend': {'type': 'disk'}}},
        'network_g': options['network_g'],
        'path': {'pretrain_network_g': str(latest), 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2,
                                                        'test_y_channel': True}}},
    }
    tested = run_entry_point('oisr_basicsr.test', test_opt, tmp_path)
    assert tested.returncode == 0, tested.stderr[-3000:]
    test_log = next((tmp_path / 'results' / f'{NAME}_test').glob('test_*.log')).read_text()
    assert float(re.findall(r'# psnr: ([0-9.]+)', test_log)[-1]) == pytest.approx(final_psnr, abs=1e-4)

    # Inference from the same file equals the network loaded by hand.
    option_file = tmp_path / f'{NAME}_test_test.yml'
    output = tmp_path / 'sr'
    image = sorted(lr_dir.iterdir())[0]
    assert infer.main(['-opt', str(option_file), '-i', str(image), '-o', str(output), '--device', 'cpu',
                       '--no-progress']) == 0
    net = OISR(**_network_args(options)).eval()
    net.load_state_dict(checkpoint['params_ema'])
    lq = torch.from_numpy(cv2.imread(str(image))[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        expected = (net(lq)[0].clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
    assert np.array_equal(cv2.imread(str(output / f'{image.stem}.png')), expected)


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return OISR(num_feat=4, num_block=1, upscale=2, scheme='rk2', g_variant='v3')


def test_bare_and_wrapped_files_load_as_pth_does(tmp_path, tiny_net):
    state = tiny_net.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / 'bare.safetensors')
    atomic_save({'params': state}, tmp_path / 'wrapped.safetensors')
    for name in ('bare.safetensors', 'wrapped.safetensors'):
        loaded = load_weights(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_pickle_named_safetensors_is_not_unpickled(tmp_path, tiny_net):
    path = tmp_path / 'disguised.safetensors'
    torch.save({'params': tiny_net.state_dict()}, path)
    with pytest.raises(CheckpointError, match='as a safetensors file'):
        load_weights(path)


def test_wrong_shape_is_refused_naming_the_key(tmp_path, tiny_net, capsys):
    state = dict(tiny_net.state_dict())
    state['conv_first.weight'] = torch.zeros(4, 3, 5, 5)
    weights = tmp_path / 'wrong.safetensors'
    atomic_save({'params': state}, weights)
    opt = {'network_g': {'type': 'OISR', 'num_feat': 4, 'num_block': 1, 'upscale': 2, 'scheme': 'rk2',
                         'g_variant': 'v3'}}
    with pytest.raises(CheckpointError, match=r'wrong.safetensors does not fit network_g .*conv_first\.weight'):
        build_network_from_options(opt, weights)


def test_non_finite_tensor_is_refused_naming_the_key(tmp_path, tiny_net):
    state = dict(tiny_net.state_dict())
    state['body.blocks.0.scale1'] = torch.tensor([float('nan')])
    weights = tmp_path / 'nan.safetensors'
    atomic_save({'params': state}, weights)
    with pytest.raises(CheckpointError, match=r'nan.safetensors was not loaded: params\.body\.blocks\.0\.scale1 holds'):
        load_weights(weights)
    with pytest.raises(NonFiniteWeightsError, match=r'x.pth was not loaded: w holds 1 non-finite value'):
        check_finite({'w': torch.tensor([1.0, float('inf')])}, 'x.pth')


def test_converter_reads_and_writes_safetensors(tmp_path):
    torch.manual_seed(0)
    ours = build_paper_model('LF-s', 2).state_dict()
    authors = {theirs: ours[key] for theirs, key in authors_key_map('LF-s', 2).items()}
    save_file({k: v.contiguous() for k, v in authors.items()}, tmp_path / 'authors.safetensors')
    output = tmp_path / 'net_g.safetensors'
    assert convert_checkpoint(tmp_path / 'authors.safetensors', output, 'LF-s', 2) == len(ours)
    converted = safe_load(output)['params']
    assert converted.keys() == ours.keys() and all(torch.equal(converted[k], ours[k]) for k in ours)
    with pytest.raises(ConversionError, match=r'out\.pt: the output must end in \.pth or \.safetensors'):
        convert_checkpoint(tmp_path / 'authors.safetensors', tmp_path / 'out.pt', 'LF-s', 2)
