"""The shims without which ``import basicsr`` (BasicSR 1.4.2) fails on today's torchvision and Python.

``import oisr_basicsr`` applies them (:func:`apply`) before BasicSR is first imported, and changes nothing
else of BasicSR. The changes that make BasicSR's training and test pipelines safe are applied only on request:
:func:`oisr_basicsr.install_basicsr_safeguards`.

This module imports nothing from the package, so that it can run before BasicSR (and the package's modules
that import BasicSR) are imported.
"""

import functools
import re
import sys
import types


def alias_functional_tensor() -> None:
    """torchvision 0.17 removed ``transforms.functional_tensor``, which ``basicsr.data.degradations`` imports."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        from torchvision.transforms import functional
        module = types.ModuleType(name)
        module.rgb_to_grayscale = functional.rgb_to_grayscale
        sys.modules[name] = module


@functools.total_ordering
class LooseVersion:
    """The part of ``distutils.version.LooseVersion`` that BasicSR uses: ordering versions such as '0.29.1+cu130'
    by their numeric and alphabetic components."""

    def __init__(self, version: str):
        self.version = version
        self.components = [int(part) if part.isdigit() else part for part in re.findall(r'\d+|[a-z]+', version.lower())]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LooseVersion) and self.components == other.components

    def __lt__(self, other: 'LooseVersion') -> bool:
        return self.components < other.components

    def __repr__(self) -> str:
        return f'LooseVersion({self.version!r})'


def provide_distutils_version() -> None:
    """``basicsr.archs.arch_util`` imports ``distutils.version.LooseVersion``. Python 3.12 removed distutils;
    setuptools (a dependency) brings a copy back, except with ``SETUPTOOLS_USE_DISTUTILS=stdlib`` or a setuptools
    without it: then :class:`LooseVersion` stands in."""
    try:
        import distutils.version  # noqa: F401
    except ImportError:
        package = sys.modules.setdefault('distutils', types.ModuleType('distutils'))
        module = types.ModuleType('distutils.version')
        module.LooseVersion = LooseVersion
        package.version = module
        sys.modules['distutils.version'] = module


def apply() -> None:
    """Apply both shims; a second call changes nothing."""
    alias_functional_tensor()
    provide_distutils_version()
