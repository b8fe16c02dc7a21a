"""Model cards: the fields of a card written beside an exported model, checked against the option file, the
training log and the weights of a tiny real training run."""

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import run_entry_point, tiny_train_options

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.metrics import calculate_psnr, calculate_ssim

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.complexity import network_complexity
from oisr_basicsr.tools.model_card import LICENSE_PLACEHOLDER, last_validation
from oisr_cli.commands import export as export_onnx

NAME = 'tiny_card'


def test_card_of_an_exported_trained_model(tmp_path, paired_folders, one_thread):
    pytest.importorskip('onnxruntime')
    hr_dir, lr_dir = paired_folders
    options = tiny_train_options(hr_dir, lr_dir, NAME, total_iter=4)
    options['val']['metrics']['ssim'] = {'type': 'calculate_ssim', 'crop_border': 2, 'test_y_channel': True}
    options['logger']['use_tb_logger'] = False
    trained = run_entry_point('oisr_basicsr.train', options, tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    weights = tmp_path / 'experiments' / NAME / 'models' / 'net_g_latest.pth'
    test_file = tmp_path / 'test.yml'
    test_file.write_text(yaml.safe_dump({'name': 'card_test', 'scale': 2, 'network_g': options['network_g'],
                                         'path': {'pretrain_network_g': str(weights)}}))
    output = tmp_path / 'export' / 'tiny.onnx'
    assert export_onnx.main(['-opt', str(test_file), '--output', str(output),
                                            '--sample-size', '16', '16']) == 0

    card = json.loads((tmp_path / 'export' / 'tiny.onnx.card.json').read_text())
    network_args = {key: value for key, value in options['network_g'].items() if key != 'type'}
    assert (card['architecture'], card['architectureOptions'], card['scale']) == ('OISR', network_args, 2)
    assert (card['inputChannels'], card['outputChannels'], card['colorMode']) == (3, 3, 'RGB')
    net = OISR(**network_args)
    net.load_state_dict(torch.load(weights)['params'])
    assert card['parameters'] == sum(p.numel() for p in net.parameters())
    assert card['macs720p'] == network_complexity(options['network_g'], 2)['macs']
    assert card['license'] == LICENSE_PLACEHOLDER
    assert card['resources'] == [{'type': 'onnx', 'file': 'tiny.onnx', 'size': output.stat().st_size,
                                  'sha256': hashlib.sha256(output.read_bytes()).hexdigest()}]
    train = options['datasets']['train']
    assert (card['trainingIterations'], card['trainingBatchSize'], card['trainingHRSize'], card['dataset']) == (
        4, train['batch_size_per_gpu'], train['gt_size'], 'tiny')
    assert card['trainingData'] == {'dataroot_gt': str(hr_dir), 'dataroot_lq': str(lr_dir)}

    # The last validation, recomputed from the final weights with BasicSR's metrics (logged to 4 decimals).
    psnrs, ssims = [], []
    for hr_path in sorted(hr_dir.iterdir()):
        lq = cv2.imread(str(lr_dir / hr_path.name))[..., ::-1].astype(np.float32) / 255
        with torch.inference_mode():
            sr = net.eval()(torch.from_numpy(lq.copy()).permute(2, 0, 1)[None])[0].clamp(0, 1)
        sr = np.round(sr.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)
        hr = cv2.imread(str(hr_path))
        psnrs.append(calculate_psnr(sr, hr, crop_border=2, test_y_channel=True))
        ssims.append(calculate_ssim(sr, hr, crop_border=2, test_y_channel=True))
    validation = card['validation']
    assert list(validation) == ['tiny_val'] and validation['tiny_val']['iteration'] == 4
    assert validation['tiny_val']['psnr'] == pytest.approx(np.mean(psnrs), abs=1e-4)
    assert validation['tiny_val']['ssim'] == pytest.approx(np.mean(ssims), abs=1e-4)


def test_last_validation_per_dataset():
    log = '\n'.join([
        '2026-01-01 00:00:00,000 INFO: [tiny..][epoch:  0, iter:       2, lr:(1.000e-03,)] l_pix: 1.0e-01',
        '2026-01-01 00:00:01,000 INFO: Validation Set5',
        '\t # psnr: 30.0000\tBest: 30.0000 @ 2 iter',
        '\t # ssim: 0.9000\tBest: 0.9000 @ 2 iter',
        '',
        '2026-01-01 00:00:02,000 INFO: Validation Set14',
        '\t # psnr: 28.0000\tBest: 28.0000 @ 2 iter',
        '',
        '2026-01-01 00:00:03,000 INFO: [tiny..][epoch:  1, iter:   1,000, lr:(5.000e-04,)] l_pix: 9.0e-02',
        '2026-01-01 00:00:04,000 INFO: Validation Set5',
        '\t # psnr: 31.5000\tBest: 31.5000 @ 1000 iter',
        '\t # ssim: 0.9100\tBest: 0.9100 @ 1000 iter',
    ])
    assert last_validation(log) == {'Set5': {'iteration': 1000, 'psnr': 31.5, 'ssim': 0.91},
                                    'Set14': {'iteration': 2, 'psnr': 28.0}}
