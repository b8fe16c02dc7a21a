"""ODE-based super-resolution (OISR, NODE-SR) as a BasicSR plugin.

Importing the package makes BasicSR 1.4.2 importable on today's torch stack
(:mod:`oisr_basicsr.compat`) and registers the package's architectures,
datasets and models in BasicSR's registries (and OISR in spandrel's, when spandrel is installed).
"""

from importlib.util import find_spec

from . import compat

compat.apply()

from . import archs, data, models  # noqa: E402,F401  (registration needs the fixes above)
from .version import __version__  # noqa: E402,F401

if find_spec('spandrel') is not None:
    # spandrel (an optional extra) then detects OISR checkpoints: see oisr_basicsr.spandrel_support.
    from .spandrel_support import install as _install_in_spandrel

    _install_in_spandrel()
