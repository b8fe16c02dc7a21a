"""Build and install BasicSR 1.4.2 from its PyPI sdist with the fix its setup.py needs on Python >= 3.13.

Run it with the environment's Python before installing this package (README, "Set-up in two commands")::

    .venv/bin/python scripts/install_basicsr.py

The work is done by ``oisr_basicsr/basicsr_sdist.py``, loaded here by its path: importing the package would import
BasicSR, which is not installed yet.
"""

import importlib.util
import sys
from pathlib import Path

MODULE_PATH = Path(__file__).resolve().parents[1] / 'oisr_basicsr' / 'basicsr_sdist.py'


def load_basicsr_sdist():
    spec = importlib.util.spec_from_file_location('basicsr_sdist', MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == '__main__':
    sys.exit(load_basicsr_sdist().main())
