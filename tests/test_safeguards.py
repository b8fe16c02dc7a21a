"""oisr_basicsr.safeguards: installed only on request, then each safeguard in place and working."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT

import oisr_basicsr
from oisr_basicsr.safeguards import distributed, resume

# Run in a fresh interpreter with the path of oisr_basicsr/compat.py: imports BasicSR with the import shims alone
# and records its own functions and classes, then prints what `import oisr_basicsr` changes of them and what
# install_basicsr_safeguards() then changes (each changed name with the module of its new value).
CHANGES_SCRIPT = """
import importlib.util, inspect, json, sys

spec = importlib.util.spec_from_file_location('import_shims', sys.argv[1])
shims = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shims)
shims.apply()
import basicsr
from basicsr.utils.img_util import imwrite
from basicsr.utils.registry import DATASET_REGISTRY


def basicsr_members():
    members = {}
    for name, module in list(sys.modules.items()):
        if name == 'basicsr' or name.startswith('basicsr.'):
            for attribute, value in vars(module).items():
                members[f'{name}.{attribute}'] = value
                if inspect.isclass(value) and value.__module__.startswith('basicsr.'):
                    for key, member in vars(value).items():
                        members[f'{value.__module__}.{value.__qualname__}.{key}'] = member
    return members


def changes(before):
    after = basicsr_members()
    return {key: getattr(after.get(key), '__module__', None)
            for key, value in before.items() if after.get(key) is not value}


def paired_dataset_module():
    return DATASET_REGISTRY.get('PairedImageDataset').__module__


before = basicsr_members()
# The modules of BasicSR holding its imwrite (the package basicsr's own re-export is left as it is).
report = {'imwrite_holders': sorted(key for key, value in before.items()
                                    if key.rpartition('.')[0].startswith('basicsr.') and value is imwrite)}
import oisr_basicsr
report.update(on_import=changes(before), dataset_on_import=paired_dataset_module())
oisr_basicsr.install_basicsr_safeguards()
report.update(on_install=changes(before), dataset_on_install=paired_dataset_module())
print(json.dumps(report))
"""
BASE_MODEL = 'basicsr.models.base_model.BaseModel'
# What install_basicsr_safeguards() replaces (besides BasicSR's imwrite wherever a module of BasicSR holds it),
# and the module of the package that the replacement comes from.
INSTALLED = {
    **{f'{BASE_MODEL}.{method}': 'oisr_basicsr.safeguards.checkpoint_io'
       for method in ('save_network', 'save_training_state', 'load_network')},
    f'{BASE_MODEL}.resume_training': 'oisr_basicsr.safeguards.resume',
    f'{BASE_MODEL}.model_to_device': 'oisr_basicsr.safeguards.distributed',
    f'{BASE_MODEL}.validation': 'oisr_basicsr.safeguards.validation',
    f'{BASE_MODEL}.update_learning_rate': 'oisr_basicsr.safeguards.loss_check',
    f'{BASE_MODEL}.reduce_loss_dict': 'oisr_basicsr.safeguards.loss_check',
    'basicsr.train.load_resume_state': 'oisr_basicsr.safeguards.resume',
    'basicsr.train.EnlargedSampler': 'oisr_basicsr.safeguards.resume',
    'basicsr.train.init_tb_loggers': 'oisr_basicsr.safeguards.distributed',
    'basicsr.utils.dist_util.init_dist': 'oisr_basicsr.safeguards.distributed',
    'basicsr.utils.options.init_dist': 'oisr_basicsr.safeguards.distributed',
    'basicsr.train.copy_opt_file': 'oisr_basicsr.safeguards.output_writes',
    'basicsr.train.make_exp_dirs': 'oisr_basicsr.safeguards.experiment_dirs',
    'basicsr.test.make_exp_dirs': 'oisr_basicsr.safeguards.experiment_dirs',
}


@pytest.fixture(scope='module')
def basicsr_changes() -> dict:
    compat = REPO_ROOT / 'oisr_basicsr' / 'compat.py'
    result = subprocess.run([sys.executable, '-c', CHANGES_SCRIPT, str(compat)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_package_leaves_basicsr_as_it_is(basicsr_changes):
    assert basicsr_changes['on_import'] == {}
    assert basicsr_changes['dataset_on_import'] == 'basicsr.data.paired_image_dataset'


def test_installing_the_safeguards_replaces_exactly_what_they_name(basicsr_changes):
    imwrite = {key: 'oisr_basicsr.safeguards.output_writes' for key in basicsr_changes['imwrite_holders']}
    assert 'basicsr.models.sr_model.imwrite' in imwrite  # what SRModel's validation writes its images with
    assert basicsr_changes['on_install'] == {**INSTALLED, **imwrite}
    assert basicsr_changes['dataset_on_install'] == 'oisr_basicsr.safeguards.image_errors'


@pytest.mark.usefixtures('basicsr_safeguards')
def test_trainer_uses_cpu_safe_resume():
    import basicsr.train

    assert basicsr.train.load_resume_state is resume.load_resume_state


def _resume_opt(tmp_path, auto_resume):
    return {
        'auto_resume': auto_resume,
        'num_gpu': 0,
        'is_train': True,
        'path': {'training_states': str(tmp_path / 'training_states'), 'resume_state': None},
    }


def test_auto_resume_picks_highest_iteration_and_loads_on_cpu(tmp_path):
    states = tmp_path / 'training_states'
    states.mkdir()
    for it in (9, 10, 100):  # 100 sorts before 9 as text; the numeric maximum must win
        torch.save({'iter': it, 'epoch': 0, 'weights': torch.ones(2)}, states / f'{it}.state')
    (states / 'notes.txt').write_text('not a state')
    opt = _resume_opt(tmp_path, auto_resume=True)

    state = resume.load_resume_state(opt)

    assert state['iter'] == 100
    assert state['weights'].device.type == 'cpu'
    assert opt['path']['resume_state'] == str(states / '100.state')


def test_auto_resume_without_states_starts_fresh(tmp_path):
    assert resume.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None


def test_explicit_resume_state_is_loaded(tmp_path):
    path = tmp_path / '7.state'
    torch.save({'iter': 7, 'epoch': 1}, path)
    opt = _resume_opt(tmp_path, auto_resume=False)
    opt['path']['resume_state'] = str(path)
    assert resume.load_resume_state(opt)['iter'] == 7


def _wrapping_functions() -> dict[str, object]:
    """The replacements that wrap what they replace."""
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel

    return {'init_tb_loggers': basicsr.train.init_tb_loggers, 'resume_training': BaseModel.resume_training,
            'update_learning_rate': BaseModel.update_learning_rate, 'reduce_loss_dict': BaseModel.reduce_loss_dict,
            'make_exp_dirs': basicsr.train.make_exp_dirs, 'test_make_exp_dirs': basicsr.test.make_exp_dirs}


@pytest.mark.usefixtures('basicsr_safeguards')
def test_install_is_idempotent():
    # A second call must not wrap the wrappers again (each resume would skip twice, each loss be checked twice).
    before = _wrapping_functions()
    oisr_basicsr.install_basicsr_safeguards()
    assert _wrapping_functions() == before




def test_slurm_environment_maps_to_torch_variables(monkeypatch):
    for key, value in {'SLURM_PROCID': '5', 'SLURM_NTASKS': '8', 'SLURM_LOCALID': '1', 'SLURM_NODELIST': 'n[1-2]',
                       'MASTER_ADDR': 'n1'}.items():
        monkeypatch.setenv(key, value)
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        # Set first so that monkeypatch records the key: the values written below must not leak into later tests.
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    distributed._slurm_environment(port=29555)
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == ('5', '8', '1')
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('n1', '29555')


def test_unknown_launcher_is_named():
    with pytest.raises(ValueError, match="--launcher: 'mpi' is not supported"):
        distributed.init_dist('mpi')


def _torchrun_environment(monkeypatch, **variables: str) -> None:
    """What torchrun sets for each process (the rendezvous itself is replaced by the tests)."""
    for name, value in {'RANK': '0', 'WORLD_SIZE': '16', 'MASTER_ADDR': 'node0', 'MASTER_PORT': '29500',
                        **variables}.items():
        monkeypatch.setenv(name, value)


def test_gpus_use_nccl_and_the_local_ranks_device(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.setdefault('device', device))
    monkeypatch.setattr(distributed, 'start_process_group', lambda backend: calls.setdefault('backend', backend))
    # The second process of the second node: global rank 9, local rank 1.
    _torchrun_environment(monkeypatch, RANK='9', LOCAL_RANK='1')
    distributed.init_dist('pytorch')
    assert calls == {'device': 1, 'backend': 'nccl'}


def test_without_gpus_nccl_falls_back_to_gloo(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.setdefault('device', device))
    monkeypatch.setattr(distributed, 'start_process_group', lambda backend: calls.setdefault('backend', backend))
    _torchrun_environment(monkeypatch)
    distributed.init_dist('pytorch', backend='nccl')
    assert calls == {'backend': 'gloo'}
