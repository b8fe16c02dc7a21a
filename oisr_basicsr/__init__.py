"""ODE-based super-resolution (OISR, NODE-SR) as a BasicSR plugin.

Importing the package makes BasicSR 1.4.2 importable on today's torch stack
(:mod:`oisr_basicsr.compat`) and registers the package's architectures,
datasets and models in BasicSR's registries.
"""

from . import compat

compat.apply()

from . import archs, data, models  # noqa: E402,F401  (registration needs the fixes above)
from .version import __version__  # noqa: E402,F401
