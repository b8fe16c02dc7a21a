"""The import shims of oisr_basicsr.compat, each shown to be needed and to work."""

import os
import subprocess
import sys

import pytest

import oisr_basicsr  # noqa: F401  (applies the shims)
from oisr_basicsr import compat


def test_basicsr_imports_with_new_torchvision():
    import basicsr.data.degradations as degradations
    from torchvision.transforms import functional

    assert degradations.rgb_to_grayscale is functional.rgb_to_grayscale


@pytest.mark.slow
def test_plain_basicsr_import_fails_without_the_fix():
    result = subprocess.run([sys.executable, '-c', 'import basicsr'], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "No module named 'torchvision.transforms.functional_tensor'" in result.stderr


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
