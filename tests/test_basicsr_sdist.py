"""The step that builds BasicSR 1.4.2 from its PyPI sdist on Python >= 3.13 (oisr_basicsr/basicsr_sdist.py)."""

import difflib
import io
import os
import subprocess
import sys
import tarfile
import urllib.error
import zipfile

import pytest
from conftest import REPO_ROOT

from oisr_basicsr import basicsr_sdist
from oisr_basicsr.basicsr_sdist import SdistMismatchError

# The lines around BasicSR's version lookup, shortened; the test sdists below are built from them.
SETUP_PY = (
    "from setuptools import setup\n\nversion_file = 'basicsr/version.py'\n\n\n"
    + basicsr_sdist.VERSION_LOOKUP
    + "\n\nif __name__ == '__main__':\n    setup(name='basicsr', version=get_version())\n"
)
VERSION_PY = "__version__ = '1.4.2'\n"


def _get_version(lookup: str, tmp_path) -> str:
    """Define ``get_version`` from ``lookup`` as setup.py does and call it on a BasicSR version file."""
    version_file = tmp_path / 'version.py'
    version_file.write_text(VERSION_PY)
    namespace = {'version_file': str(version_file)}
    exec(lookup, namespace)
    return namespace['get_version']()


def test_fixed_lookup_reads_the_version_and_the_original_fails_from_python_3_13(tmp_path):
    fixed = basicsr_sdist.patch_version_lookup(basicsr_sdist.VERSION_LOOKUP)
    assert _get_version(fixed, tmp_path) == '1.4.2'
    if sys.version_info >= (3, 13):
        with pytest.raises(KeyError, match='__version__'):
            _get_version(basicsr_sdist.VERSION_LOOKUP, tmp_path)
    else:
        assert _get_version(basicsr_sdist.VERSION_LOOKUP, tmp_path) == '1.4.2'


def test_patch_changes_only_the_version_lookup():
    patched = basicsr_sdist.patch_version_lookup(SETUP_PY)
    changed = [line for line in difflib.ndiff(SETUP_PY.splitlines(), patched.splitlines()) if line[:1] in '+-']
    assert changed == [
        '+     namespace = {}',
        "-         exec(compile(f.read(), version_file, 'exec'))",
        "+         exec(compile(f.read(), version_file, 'exec'), namespace)",
        "-     return locals()['__version__']",
        "+     return namespace['__version__']",
    ]


@pytest.mark.parametrize('setup_py, count', [
    (SETUP_PY.replace("open(version_file, 'r')", 'open(version_file)'), 0),   # a release that changed the lookup
    (SETUP_PY.replace("locals()['__version__']", "locals().get('__version__')"), 0),
    (SETUP_PY.replace('    ', '\t'), 0),                                         # the same code, indented otherwise
    (SETUP_PY + basicsr_sdist.VERSION_LOOKUP, 2),
])
def test_patch_refuses_a_setup_py_that_differs(setup_py, count):
    with pytest.raises(SdistMismatchError, match=f'expected version lookup {count} times, not once'):
        basicsr_sdist.patch_version_lookup(setup_py)


def _make_sdist(path, files: dict[str, str]):
    with tarfile.open(path, 'w:gz') as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_unpack_patches_the_sdist_it_expects(tmp_path):
    sdist = _make_sdist(tmp_path / 'basicsr-1.4.2.tar.gz', {
        'basicsr-1.4.2/setup.py': SETUP_PY, 'basicsr-1.4.2/basicsr/version.py': VERSION_PY})

    source = basicsr_sdist.unpack_patched_source(sdist, tmp_path / 'out', basicsr_sdist.sha256_of(sdist))

    assert (source / 'setup.py').read_text() == basicsr_sdist.patch_version_lookup(SETUP_PY)
    assert (source / 'basicsr' / 'version.py').read_text() == VERSION_PY


def test_unpack_refuses_an_sdist_whose_setup_py_differs(tmp_path):
    sdist = _make_sdist(tmp_path / 'basicsr-1.4.2.tar.gz', {
        'basicsr-1.4.2/setup.py': SETUP_PY.replace("'r'", "'rt'")})
    with pytest.raises(SdistMismatchError, match='0 times, not once; this is not the setup.py of basicsr 1.4.2'):
        basicsr_sdist.unpack_patched_source(sdist, tmp_path / 'out', basicsr_sdist.sha256_of(sdist))


def test_unpack_refuses_an_sdist_with_another_digest(tmp_path):
    # The default digest is PyPI's: any other file, such as this well-formed one, is refused before unpacking.
    sdist = _make_sdist(tmp_path / 'basicsr-1.4.2.tar.gz', {'basicsr-1.4.2/setup.py': SETUP_PY})
    with pytest.raises(SdistMismatchError, match=f'expected {basicsr_sdist.SDIST_SHA256} .*refusing to patch it'):
        basicsr_sdist.unpack_patched_source(sdist, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


def test_unpack_refuses_paths_outside_the_folder(tmp_path):
    sdist = _make_sdist(tmp_path / 'basicsr-1.4.2.tar.gz', {'../escaped.py': 'x = 1\n'})
    with pytest.raises(tarfile.TarError):
        basicsr_sdist.unpack_patched_source(sdist, tmp_path / 'out', basicsr_sdist.sha256_of(sdist))
    assert not (tmp_path / 'escaped.py').exists()


def test_main_reports_a_wrong_sdist_as_a_user_error(tmp_path, capsys):
    sdist = _make_sdist(tmp_path / 'basicsr-1.4.2.tar.gz', {'basicsr-1.4.2/setup.py': SETUP_PY})
    assert basicsr_sdist.main(['--sdist', str(sdist), '--wheel-dir', str(tmp_path / 'w'), '--no-install']) == 2
    assert capsys.readouterr().err.startswith(f'error: {sdist} has SHA-256 ')
    assert not (tmp_path / 'w').exists()


def test_main_names_the_way_out_when_pypi_is_unreachable(monkeypatch, capsys):
    def unreachable(dest_dir):
        raise urllib.error.URLError('Name or service not known')

    monkeypatch.setattr(basicsr_sdist, 'download_sdist', unreachable)
    assert basicsr_sdist.main([]) == 2
    assert capsys.readouterr().err == (
        'error: cannot download basicsr-1.4.2.tar.gz from https://pypi.org/simple/basicsr/ (<urlopen error Name or '
        'service not known>); fetch it another way and pass it with --sdist FILE.\n')


def test_main_refuses_to_build_a_wheel_it_would_delete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        basicsr_sdist.main(['--no-install'])
    assert exit_info.value.code == 2
    assert 'error: --no-install needs --wheel-dir' in capsys.readouterr().err


@pytest.mark.slow
def test_script_builds_the_patched_wheel_from_the_pypi_sdist(tmp_path):
    """The real sdist from PyPI, through the script, with torch, BasicSR and this package unimportable."""
    blocked = tmp_path / 'blocked'
    for name in ('torch', 'basicsr', 'oisr_basicsr'):
        (blocked / name).mkdir(parents=True)
        (blocked / name / '__init__.py').write_text(f'raise ImportError("{name} must not be imported here")\n')
    sdist = basicsr_sdist.download_sdist(tmp_path)
    original = tarfile.open(sdist).extractfile('basicsr-1.4.2/setup.py').read().decode()

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'scripts' / 'install_basicsr.py'), '--sdist', str(sdist),
         '--wheel-dir', str(tmp_path / 'wheels'), '--no-install'],
        capture_output=True, text=True, timeout=300, env={**os.environ, 'PYTHONPATH': str(blocked)})

    assert result.returncode == 0, result.stderr
    assert 'Built basicsr-1.4.2-py3-none-any.whl.' in result.stdout
    with zipfile.ZipFile(tmp_path / 'wheels' / 'basicsr-1.4.2-py3-none-any.whl') as wheel:
        assert 'Version: 1.4.2' in wheel.read('basicsr-1.4.2.dist-info/METADATA').decode().splitlines()
        assert "__version__ = '1.4.2'" in wheel.read('basicsr/version.py').decode()
    patched = basicsr_sdist.unpack_patched_source(sdist, tmp_path / 'again')
    assert (patched / 'setup.py').read_text() == basicsr_sdist.patch_version_lookup(original)
    assert original.count(basicsr_sdist.VERSION_LOOKUP) == 1
