"""Atomic saves, safe loading and random-state round trips."""

import os
import random
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_train_options

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.checkpoints.io import (
    UnsafeCheckpointError,
    atomic_save,
    capture_rng_state,
    restore_rng_state,
    safe_load,
)
from oisr_basicsr.safeguards import resume
from oisr_cli.commands import train


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_latest.pth'
    atomic_save({'params': {'w': torch.ones(3)}}, path)

    def crash(*_args):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({'params': {'w': torch.zeros(3)}}, path)
    monkeypatch.undo()

    assert torch.equal(safe_load(path)['params']['w'], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ['net_g_latest.pth']  # no temporary file left behind


def test_pickle_carrying_code_is_refused_and_not_run(tmp_path):
    marker, path = tmp_path / 'pwned', tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.ones(1)}, 'payload': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'arbitrary code \(.*GLOBAL posix.system.*trust_checkpoints: true'):
        safe_load(path)
    assert not marker.exists()
    safe_load(path, trusted=True)  # the documented override really runs the file
    assert marker.exists()


def test_unsafe_state_is_not_skipped_by_auto_resume(tmp_path):
    states = tmp_path / 'training_states'
    states.mkdir()
    torch.save({'iter': 2, 'epoch': 0}, states / '2.state')
    torch.save({'iter': 4, 'epoch': 0, 'x': _RunsCode(tmp_path / 'pwned')}, states / '4.state')
    opt = {'auto_resume': True, 'num_gpu': 0, 'is_train': True,
           'path': {'training_states': str(states), 'resume_state': None}}
    with pytest.raises(UnsafeCheckpointError, match='4.state'):
        resume.load_resume_state(opt)


def test_truncated_latest_state_is_skipped_with_a_warning(tmp_path):
    states = tmp_path / 'training_states'
    states.mkdir()
    torch.save({'iter': 2, 'epoch': 0}, states / '2.state')
    torch.save({'iter': 4, 'epoch': 0, 'big': torch.zeros(1000)}, states / '4.state')
    data = (states / '4.state').read_bytes()
    (states / '4.state').write_bytes(data[:len(data) // 2])
    opt = {'auto_resume': True, 'num_gpu': 0, 'is_train': True,
           'path': {'training_states': str(states), 'resume_state': None}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        state = resume.load_resume_state(opt)
    assert state['iter'] == 2
    assert any('Skipping unreadable training state' in str(w.message) and '4.state' in str(w.message)
               for w in caught)


def test_rng_state_round_trip_through_a_safe_load(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    atomic_save({'rng': capture_rng_state()}, tmp_path / 's.state')
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(10)
    np.random.seed(20)
    torch.manual_seed(30)
    restore_rng_state(safe_load(tmp_path / 's.state')['rng'])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize('trusted', [False, True])
def test_pretrained_network_with_code_through_the_entry_point(tmp_path, paired_folders, monkeypatch, capsys, trusted):
    # Refused with one error line unless the option file itself says `trust_checkpoints: true`.
    options = tiny_train_options(*paired_folders, 'pretrained_with_code', total_iter=1)
    network = {key: value for key, value in options['network_g'].items() if key != 'type'}
    marker, weights = tmp_path / 'pwned', tmp_path / 'pretrained.pth'
    torch.save({'params': OISR(**network).state_dict(), 'payload': _RunsCode(marker)}, weights)
    options['path'].update(pretrain_network_g=str(weights), trust_checkpoints=trusted)
    options['logger']['use_tb_logger'] = False
    (tmp_path / 'options.yml').write_text(yaml.safe_dump(options))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['oisr-train', '-opt', 'options.yml'])
    if trusted:
        train.main()
        assert marker.exists()
        assert (tmp_path / 'experiments' / 'pretrained_with_code' / 'models' / 'net_g_latest.pth').exists()
        return
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    assert exit_info.value.code != 0
    # Refused by the start-up check of path.pretrain_network_g, before anything is built.
    assert (f'error: path.pretrain_network_g: {weights} was not loaded: it holds objects other than tensors'
            in capsys.readouterr().err)
    assert not marker.exists()
