"""ODE-based super-resolution (OISR, NODE-SR) as a BasicSR plugin.

Importing the package makes BasicSR 1.4.2 importable on today's torch stack
(:mod:`oisr_basicsr.compat`) and registers the package's architectures,
datasets and models in BasicSR's registries (and OISR in spandrel's, when spandrel is installed).
It changes nothing else of BasicSR: :func:`install_basicsr_safeguards` makes BasicSR's training and
test pipelines safe to kill, resume and run distributed (:mod:`oisr_basicsr.safeguards`); the
package's entry points call it, scripts of your own call it themselves.
"""

from importlib.util import find_spec

from . import compat

compat.apply()

from . import archs, data, models  # noqa: E402,F401  (registration needs the shims above)
from .safeguards import install_basicsr_safeguards  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'install_basicsr_safeguards']

if find_spec('spandrel') is not None:
    # spandrel (an optional extra) then detects OISR checkpoints: see oisr_basicsr.spandrel_support.
    from .spandrel_support import install as _install_in_spandrel

    _install_in_spandrel()
