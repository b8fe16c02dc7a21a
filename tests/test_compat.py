"""Each fix in oisr_basicsr.compat, shown to be needed and to work."""

import os
import subprocess
import sys

import pytest
import torch

import oisr_basicsr  # noqa: F401  (applies the fixes)
from oisr_basicsr import compat


def test_basicsr_imports_with_new_torchvision():
    import basicsr.data.degradations as degradations
    from torchvision.transforms import functional

    assert degradations.rgb_to_grayscale is functional.rgb_to_grayscale


def test_trainer_uses_cpu_safe_resume():
    import basicsr.train

    assert basicsr.train.load_resume_state is compat.load_resume_state


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

    state = compat.load_resume_state(opt)

    assert state['iter'] == 100
    assert state['weights'].device.type == 'cpu'
    assert opt['path']['resume_state'] == str(states / '100.state')


def test_auto_resume_without_states_starts_fresh(tmp_path):
    assert compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None


def test_explicit_resume_state_is_loaded(tmp_path):
    path = tmp_path / '7.state'
    torch.save({'iter': 7, 'epoch': 1}, path)
    opt = _resume_opt(tmp_path, auto_resume=False)
    opt['path']['resume_state'] = str(path)
    assert compat.load_resume_state(opt)['iter'] == 7


def test_local_rank_argument_of_legacy_launcher_is_renamed():
    argv = ['train.py', '-opt', 'x.yml', '--local-rank=3', '--launcher', 'pytorch']
    compat.normalize_local_rank_argument(argv)
    assert argv == ['train.py', '-opt', 'x.yml', '--local_rank=3', '--launcher', 'pytorch']
    argv = ['train.py', '--local-rank', '1']
    compat.normalize_local_rank_argument(argv)
    assert argv == ['train.py', '--local_rank', '1']


def _patched_functions() -> dict[str, object]:
    import basicsr.train
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.models.base_model import BaseModel

    return {'functional_tensor': sys.modules['torchvision.transforms.functional_tensor'],
            'init_tb_loggers': basicsr.train.init_tb_loggers, 'resume_training': BaseModel.resume_training,
            'update_learning_rate': BaseModel.update_learning_rate, 'reduce_loss_dict': BaseModel.reduce_loss_dict,
            'sampler_iter': EnlargedSampler.__iter__, 'getitem': PairedImageDataset.__getitem__}


def test_apply_is_idempotent():
    # A second apply() must not wrap the wrappers again (each resume would skip twice, each loss be checked twice).
    before = _patched_functions()
    compat.apply()
    assert _patched_functions() == before


def test_plain_basicsr_import_fails_without_the_fix():
    result = subprocess.run([sys.executable, '-c', 'import basicsr'], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "No module named 'torchvision.transforms.functional_tensor'" in result.stderr


def test_slurm_environment_maps_to_torch_variables(monkeypatch):
    for key, value in {'SLURM_PROCID': '5', 'SLURM_NTASKS': '8', 'SLURM_LOCALID': '1', 'SLURM_NODELIST': 'n[1-2]',
                       'MASTER_ADDR': 'n1'}.items():
        monkeypatch.setenv(key, value)
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        # Set first so that monkeypatch records the key: the values written below must not leak into later tests.
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    compat._slurm_environment(port=29555)
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == ('5', '8', '1')
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('n1', '29555')


def test_unknown_launcher_is_named():
    with pytest.raises(ValueError, match="--launcher: 'mpi' is not supported"):
        compat.init_dist('mpi')


def test_gpus_use_nccl_and_the_local_ranks_device(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.setdefault('device', device))
    monkeypatch.setattr(compat, 'start_process_group', lambda backend: calls.setdefault('backend', backend))
    # The second process of the second node: global rank 9, local rank 1.
    monkeypatch.setenv('RANK', '9')
    monkeypatch.setenv('LOCAL_RANK', '1')
    compat.init_dist('pytorch')
    assert calls == {'device': 1, 'backend': 'nccl'}


def test_without_gpus_nccl_falls_back_to_gloo(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.setdefault('device', device))
    monkeypatch.setattr(compat, 'start_process_group', lambda backend: calls.setdefault('backend', backend))
    compat.init_dist('pytorch', backend='nccl')
    assert calls == {'backend': 'gloo'}


class _RefuseDistutils:
    """A meta-path finder that makes ``distutils`` unimportable, as on Python 3.12+ without setuptools' copy."""

    def find_spec(self, name, path=None, target=None):
        if name == 'distutils' or name.startswith('distutils.'):
            raise ModuleNotFoundError(f'No module named {name!r}')
        return None


@pytest.fixture
def without_distutils(monkeypatch):
    saved = {name: module for name, module in sys.modules.items() if name.split('.')[0] == 'distutils'}
    for name in saved:
        del sys.modules[name]
    monkeypatch.setattr(sys, 'meta_path', [_RefuseDistutils(), *sys.meta_path])
    yield
    for name in [name for name in sys.modules if name.split('.')[0] == 'distutils']:
        del sys.modules[name]
    sys.modules.update(saved)


VERSION_PAIRS = [('0.29.1+cu130', '0.9.0'), ('0.8.2', '0.9.0'), ('0.9.0', '0.9.0'), ('1.10', '1.9'), ('2.1a', '2.1')]


def test_distutils_stand_in_orders_versions_as_loose_version(without_distutils):
    with pytest.raises(ImportError):
        import distutils.version  # noqa: F401
    compat.provide_distutils_version()
    from distutils.version import LooseVersion

    assert LooseVersion is compat.LooseVersion
    expected = [(False, True, False), (True, False, False), (False, False, True), (False, True, False),
                (False, True, False)]
    assert [(LooseVersion(a) < LooseVersion(b), LooseVersion(a) > LooseVersion(b), LooseVersion(a) == LooseVersion(b))
            for a, b in VERSION_PAIRS] == expected


@pytest.mark.skipif(sys.version_info < (3, 12), reason='Python < 3.12 ships distutils')
def test_basicsr_imports_without_setuptools_distutils():
    env = {**os.environ, 'SETUPTOOLS_USE_DISTUTILS': 'stdlib'}  # setuptools' copy of distutils switched off
    code = 'import oisr_basicsr, basicsr.archs.arch_util as a; print(a.LooseVersion.__module__)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == 'oisr_basicsr.compat'
    plain = subprocess.run([sys.executable, '-c', 'import distutils'], capture_output=True, text=True, env=env,
                           timeout=60)
    assert 'No module named' in plain.stderr
