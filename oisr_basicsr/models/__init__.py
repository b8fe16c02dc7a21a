"""Imports every `*_model.py` in this folder so that its classes register with BasicSR."""

import importlib
from pathlib import Path

_modules = [
    importlib.import_module(f'{__name__}.{path.stem}') for path in sorted(Path(__file__).parent.glob('*_model.py'))
]
