"""Limits named before work starts: an inference result that cannot fit in memory is refused with its size."""

import cv2
import numpy as np
import torch
import yaml

from oisr_basicsr import memory
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_cli.commands import infer


def _nodesr_option_file(tmp_path):
    weights = tmp_path / 'node.pth'
    torch.save({'params': NODEVDSR(num_feat=4, num_layer=2).state_dict()}, weights)
    option_file = tmp_path / 'node.yml'
    option_file.write_text(yaml.safe_dump({
        'name': 'tiny_node', 'model_type': 'NODESRModel', 'ode': {'solver': 'euler', 'num_steps': 1},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
        'path': {'pretrain_network_g': str(weights)}}))
    return option_file


def test_result_larger_than_the_available_memory_is_refused(tmp_path, monkeypatch, capsys):
    image = tmp_path / 'photo.png'
    cv2.imwrite(str(image), np.zeros((20, 30, 3), np.uint8))
    # 2.5 x: a 75x50 result, 15 bytes per pixel = 56,250 bytes; the machine is made to have 50,000 available.
    monkeypatch.setattr(memory, 'available_host_memory', lambda: 50_000)
    args = ['-opt', str(_nodesr_option_file(tmp_path)), '-i', str(image), '-o', str(tmp_path / 'sr'), '--scale',
            '2.5', '--device', 'cpu', '--no-progress']
    assert infer.main(args) == 2
    assert capsys.readouterr().err == (f'error: {image}: at scale 2.5 the result is 75x50 pixels, at least 54.9 KiB '
                                       'of memory, more than the 48.8 KiB available; use a smaller --scale or a '
                                       'smaller image\n')
    assert not (tmp_path / 'sr' / 'photo.png').exists()
    monkeypatch.setattr(memory, 'available_host_memory', lambda: 56_250)
    assert infer.main(args) == 0
    assert cv2.imread(str(tmp_path / 'sr' / 'photo.png')).shape == (50, 75, 3)
