"""Build and install BasicSR 1.4.2 from its unchanged PyPI sdist on Python >= 3.13.

BasicSR's ``setup.py`` reads its version with ``exec(...)`` followed by ``locals()['__version__']``. Python 3.13
(PEP 667) made ``locals()`` in a function a snapshot that ``exec`` no longer writes into, so building the sdist
fails with ``KeyError: '__version__'`` and ``pip install basicsr==1.4.2`` cannot succeed. ``pip download`` fails the
same way (it prepares the sdist's metadata), so the sdist is fetched from PyPI directly and checked against its
published SHA-256.

This step patches only those four lines of ``setup.py``, and refuses any sdist whose digest or version lookup is
not exactly the expected one, so a later BasicSR release is never patched silently. Once BasicSR publishes a
release that builds on Python 3.13, the step is no longer needed.

The module uses the standard library alone: it runs before torch and BasicSR are installed, through
``scripts/install_basicsr.py``, which loads this file without importing the package (whose ``__init__`` imports
BasicSR).
"""

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

BASICSR_VERSION = '1.4.2'
SDIST_NAME = f'basicsr-{BASICSR_VERSION}.tar.gz'
# The digest PyPI publishes for basicsr-1.4.2.tar.gz.
SDIST_SHA256 = 'b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87'
# PyPI's simple index (PEP 691) in its JSON form, as pip reads it.
PYPI_PROJECT_INDEX = 'https://pypi.org/simple/basicsr/'

VERSION_LOOKUP = """\
def get_version():
    with open(version_file, 'r') as f:
        exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']
"""
# The same lookup with an explicit namespace, which every Python version fills.
FIXED_VERSION_LOOKUP = """\
def get_version():
    namespace = {}
    with open(version_file, 'r') as f:
        exec(compile(f.read(), version_file, 'exec'), namespace)
    return namespace['__version__']
"""


class SdistMismatchError(ValueError):
    """The sdist is not the one this step was written for."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_sdist_digest(sdist: Path, expected_sha256: str = SDIST_SHA256) -> None:
    actual = sha256_of(sdist)
    if actual != expected_sha256:
        raise SdistMismatchError(f'{sdist} has SHA-256 {actual}, expected {expected_sha256} '
                                 f'(the PyPI sdist of basicsr {BASICSR_VERSION}); refusing to patch it.')


def patch_version_lookup(setup_py: str) -> str:
    """``setup_py`` with its version lookup fixed; every other line unchanged.

    Raises :class:`SdistMismatchError` unless the lookup occurs exactly once, as expected.
    """
    count = setup_py.count(VERSION_LOOKUP)
    if count != 1:
        raise SdistMismatchError(f'setup.py holds the expected version lookup {count} times, not once; this is not '
                                 f'the setup.py of basicsr {BASICSR_VERSION}, refusing to patch it.')
    return setup_py.replace(VERSION_LOOKUP, FIXED_VERSION_LOOKUP)


def unpack_patched_source(sdist: Path, workdir: Path, expected_sha256: str = SDIST_SHA256) -> Path:
    """Check the sdist, unpack it into ``workdir`` and fix its ``setup.py``; returns the source folder."""
    check_sdist_digest(sdist, expected_sha256)
    with tarfile.open(sdist) as archive:
        # The 'data' filter refuses absolute paths, links out of the folder and device files.
        archive.extractall(workdir, filter='data')
    source = workdir / f'basicsr-{BASICSR_VERSION}'
    setup_py = source / 'setup.py'
    if not setup_py.is_file():
        raise SdistMismatchError(f'{sdist} has no basicsr-{BASICSR_VERSION}/setup.py; refusing to patch it.')
    setup_py.write_text(patch_version_lookup(setup_py.read_text(encoding='utf-8')), encoding='utf-8')
    return source


def download_sdist(dest_dir: Path) -> Path:
    """Fetch the sdist from PyPI into ``dest_dir``; its digest is checked afterwards."""
    request = urllib.request.Request(PYPI_PROJECT_INDEX, headers={'Accept': 'application/vnd.pypi.simple.v1+json'})
    with urllib.request.urlopen(request, timeout=60) as response:
        index = json.load(response)
    urls = [entry['url'] for entry in index['files'] if entry['filename'] == SDIST_NAME]
    if not urls:
        raise SdistMismatchError(f'PyPI lists no {SDIST_NAME} for basicsr {BASICSR_VERSION}.')
    path = dest_dir / SDIST_NAME
    with urllib.request.urlopen(urls[0], timeout=300) as response, open(path, 'wb') as file:
        while chunk := response.read(1 << 20):
            file.write(chunk)
    return path


def pip(*args: str) -> None:
    subprocess.run([sys.executable, '-m', 'pip', *args], check=True)


def build_wheel(source: Path, wheel_dir: Path) -> Path:
    """Build BasicSR's wheel with this interpreter's pip.

    Without build isolation: the sdist's ``setup_requires`` names torch, which an isolated build would download
    and install a second time although the build never imports it. setuptools is the only build requirement.
    """
    if importlib.util.find_spec('setuptools') is None:
        pip('install', 'setuptools')
    pip('wheel', '--no-deps', '--no-build-isolation', '--wheel-dir', str(wheel_dir), str(source))
    wheels = sorted(wheel_dir.glob(f'basicsr-{BASICSR_VERSION}-*.whl'))
    if len(wheels) != 1:
        raise RuntimeError(f'Expected one basicsr wheel in {wheel_dir}, found {[w.name for w in wheels]}.')
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=f'Build and install basicsr {BASICSR_VERSION} from its PyPI sdist with the one-function fix '
                    'its setup.py needs on Python >= 3.13.')
    parser.add_argument('--sdist', type=Path,
                        help=f'a {SDIST_NAME} fetched beforehand (default: download it from PyPI)')
    parser.add_argument('--wheel-dir', type=Path,
                        help='keep the built wheel in this folder (default: a temporary folder)')
    parser.add_argument('--no-install', action='store_true', help='build the wheel only (needs --wheel-dir)')
    args = parser.parse_args(argv)
    if args.no_install and args.wheel_dir is None:
        parser.error('--no-install needs --wheel-dir, or the wheel would be deleted at once')

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sdist = args.sdist
        if sdist is None:
            try:
                sdist = download_sdist(tmp)
            except (OSError, ValueError) as error:  # URLError is an OSError, a malformed index a ValueError
                print(f'error: cannot download {SDIST_NAME} from {PYPI_PROJECT_INDEX} ({error}); fetch it '
                      'another way and pass it with --sdist FILE.', file=sys.stderr)
                return 2
        try:
            source = unpack_patched_source(sdist, tmp / 'source')
        except (OSError, tarfile.TarError, SdistMismatchError) as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
        wheel_dir = args.wheel_dir if args.wheel_dir is not None else tmp / 'wheels'
        wheel_dir.mkdir(parents=True, exist_ok=True)
        try:
            wheel = build_wheel(source, wheel_dir)
            if not args.no_install:
                pip('install', str(wheel))
        except subprocess.CalledProcessError as error:
            print(f'error: pip failed ({error}); see its output above.', file=sys.stderr)
            return 1
        print(f'Built {wheel.name}' + ('' if args.no_install else ' and installed it') + '.')
    return 0
