"""Checks of a parsed BasicSR option dict that BasicSR itself leaves to a traceback later on.

They run once, right after BasicSR has parsed the YAML file, before any
dataset, network or log folder is made.
"""

import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from basicsr.utils.options import parse_options
from basicsr.utils.registry import ARCH_REGISTRY


class OptionError(ValueError):
    """An option file holds a key or value this package cannot run with."""


def _check_network(key: str, network_opt: dict, scale: int | None) -> None:
    if 'type' not in network_opt:
        raise OptionError(f'{key}.type is missing; name a registered architecture such as OISR.')
    arch_type = network_opt['type']
    if arch_type not in ARCH_REGISTRY:
        raise OptionError(f'{key}.type: {arch_type!r} is not a registered architecture; known ones: '
                          f'{", ".join(sorted(name for name, _ in ARCH_REGISTRY))}.')
    arch = ARCH_REGISTRY.get(arch_type)
    kwargs = {k: v for k, v in network_opt.items() if k != 'type'}
    signature = inspect.signature(arch)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        allowed = ', '.join(signature.parameters)
        raise OptionError(f'{key} ({arch_type}): {error}; its keys are: {allowed}.') from None
    upscale = network_opt.get('upscale')
    if scale is not None and upscale is not None and upscale != scale:
        raise OptionError(f'{key}.upscale is {upscale} but scale is {scale}; they must be equal.')


def validate_options(opt: dict) -> None:
    """Raise :class:`OptionError`, naming the key, for an option dict that cannot run."""
    for key in ('name', 'model_type', 'datasets'):
        if key not in opt:
            raise OptionError(f'The option file has no {key!r} key.')
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            _check_network(key, value, opt.get('scale'))


def parse_and_validate_options(root_path: str, is_train: bool = True) -> tuple[dict, object]:
    """BasicSR's ``parse_options`` followed by :func:`validate_options`."""
    opt, args = parse_options(root_path, is_train=is_train)
    validate_options(opt)
    return opt, args


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn the package's own errors about options, losses and checkpoints into ``error: ...`` and exit code 1.

    They say what is wrong and what to do; a traceback into BasicSR would only bury that.
    """
    from .compat import NonFiniteLossError
    from .utils.checkpoint_io import UnsafeCheckpointError

    try:
        yield
    except (OptionError, NonFiniteLossError, UnsafeCheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
