"""The one reader of network weights: every command that loads a checkpoint into a network reads it here.

:func:`load_weights` reads a file with :func:`~.io.safe_load` (nothing in it runs: ``weights_only`` unpickling, or
safetensors), refuses it when a floating-point tensor anywhere in it is NaN or infinite (:func:`~.io.check_finite`),
finds the state dict in it (:func:`state_dict_of`) and checks that the state dict holds weights
(:func:`check_weights`).

Layouts found:

* a bare state dict, name -> tensor;
* BasicSR's ``{'params': ..., 'params_ema': ...}``: the requested entry (``param_key``); when the file has none
  of that name, ``params``, else ``params_ema`` (BasicSR falls back to ``params`` the same way);
* a state dict kept under ``state_dict`` or ``model`` (other training code), at any depth;
* names prefixed with ``module.`` (``nn.DataParallel``), which is removed.

Weights are dense tensors (not sparse, not quantized) with string names, in a floating-point type a network
computes in (:data:`WEIGHT_DTYPES`); an integer tensor passes only where the network itself holds one (BatchNorm's
``num_batches_tracked``). Anything else would load without a word and give white images and meaningless metrics.

Training states are not weights (optimizers keep integer step counters): the resume code reads them with the same
:func:`~.io.safe_load` and refuses only non-finite values.
"""

import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .io import WEIGHT_DTYPES, check_finite, safe_load

# BasicSR's entries, in the order they are taken when the requested one is missing.
PARAM_KEYS = ('params', 'params_ema')
# Where other training code keeps a state dict.
WRAPPER_KEYS = ('state_dict', 'model')
DATA_PARALLEL_PREFIX = 'module.'
# Deeper wrapping than this is not a checkpoint any known code writes.
MAX_WRAPPING = 4


def load_weights(path: str | os.PathLike,
                 param_key: str | None = 'params',
                 trusted: bool = False,
                 map_location: Any = 'cpu',
                 network: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The weights in a checkpoint file, checked (module docstring).

    Args:
        path: A ``.pth`` (``torch.save``) or ``.safetensors`` file.
        param_key: The BasicSR entry to load (``params``, ``params_ema``); ``None`` takes the file as a bare
            state dict.
        trusted: Unpickle without ``weights_only`` (``path.trust_checkpoints``): only for files you made yourself.
        map_location: Where the tensors are loaded to.
        network: The network the weights are for: its integer tensors (BatchNorm's ``num_batches_tracked``) may
            be integers in the file too. None: every tensor must be floating point.

    Returns:
        Parameter name (without ``module.``) to tensor.

    Raises:
        CheckpointError: naming the file and what is wrong (the key, for a tensor).
    """
    path = Path(path)
    checkpoint = check_finite(read_checkpoint(path, trusted, map_location), path)
    state_dict, location = state_dict_of(checkpoint, path, param_key)
    return check_weights(state_dict, path, location, integer_tensors(network))


def read_checkpoint(path: Path, trusted: bool = False, map_location: Any = 'cpu') -> Any:
    """What a checkpoint file holds, read with :func:`~.io.safe_load`; every way it can fail is a
    :class:`~oisr_basicsr.errors.CheckpointError` naming the file."""
    if not path.is_file():
        raise CheckpointError(f'{path} does not exist or is not a file')
    try:
        return safe_load(path, map_location, trusted)
    except CheckpointError:
        raise
    except Exception as error:  # torch raises many types for a damaged file (zip, pickle, EOF); all mean the same
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f'cannot read {path}: it is not a PyTorch or safetensors file of tensors '
                              f'({reason})') from None


def state_dict_of(checkpoint: Any, source: str | os.PathLike,
                  param_key: str | None = 'params') -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in a loaded checkpoint (module docstring), and where it was in it (``'params.'``, or
    ``''`` for a bare one), for naming its keys in messages.

    Args:
        checkpoint: What the file held.
        source: The file, for messages.
        param_key: The BasicSR entry to take; ``None``: ``checkpoint`` must be a bare state dict.

    Raises:
        CheckpointError: No state dict of string names and tensors is there.
    """
    found, location = checkpoint, ''
    for _ in range(MAX_WRAPPING + 1):
        if not isinstance(found, Mapping):
            within = f' under {location[:-1]}' if location else ''
            raise CheckpointError(f'{source} holds a {type(found).__name__}{within}, not a state dict '
                                  '(a dict of name -> tensor)')
        if all(isinstance(value, torch.Tensor) for value in found.values()):
            return _without_data_parallel_prefix(found, source, location), location
        entry = _entry(found, source, param_key)
        found, location = found[entry], f'{location}{entry}.'
    raise CheckpointError(f'{source} wraps its state dict more than {MAX_WRAPPING} times ({location[:-1]})')


def _entry(checkpoint: Mapping, source: str | os.PathLike, param_key: str | None) -> str:
    """The entry of ``checkpoint`` that holds the state dict."""
    candidates = (param_key, *PARAM_KEYS, *WRAPPER_KEYS) if param_key is not None else ()
    entry = next((key for key in candidates if isinstance(checkpoint.get(key), Mapping)), None)
    if entry is None:
        others = [f'{key} ({type(value).__name__})' for key, value in checkpoint.items()
                  if not isinstance(value, torch.Tensor)]
        wrappers = 'a bare state dict, as param_key None asks' if param_key is None else \
            f'a state dict, possibly wrapped in a dict under one of {", ".join((*PARAM_KEYS, *WRAPPER_KEYS))}'
        raise CheckpointError(f'{source} is not a state dict: these entries are not tensors: {", ".join(others)}; '
                              f'expected {wrappers}')
    if entry != param_key:
        logging.getLogger('basicsr').info(f'Loading: {source} has no {param_key}, using {entry}.')
    return entry


def _without_data_parallel_prefix(state_dict: Mapping, source: str | os.PathLike,
                                  location: str) -> dict[str, torch.Tensor]:
    bad_names = [repr(name) for name in state_dict if not isinstance(name, str)]
    if bad_names:
        raise CheckpointError(f'{source} is not a state dict: these names are not strings: {", ".join(bad_names)}')
    unwrapped: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        bare_name = name.removeprefix(DATA_PARALLEL_PREFIX)
        if bare_name in unwrapped:
            raise CheckpointError(f'{source}: {location}{bare_name} is there twice, with and without '
                                  f"DataParallel's prefix {DATA_PARALLEL_PREFIX}; which one is meant is unknown")
        unwrapped[bare_name] = tensor
    return unwrapped


def integer_tensors(network: nn.Module | None) -> frozenset[str]:
    """The names of ``network``'s tensors that are not floating point (BatchNorm's ``num_batches_tracked``)."""
    if network is None:
        return frozenset()
    return frozenset(name for name, tensor in network.state_dict().items() if not tensor.is_floating_point())


def check_weights(state_dict: dict[str, torch.Tensor], source: str | os.PathLike, location: str = '',
                  integer_names: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` if every tensor is dense and floating point (an integer one only under
    ``integer_names``). Finiteness is :func:`~.io.check_finite`'s.

    Args:
        state_dict: Name -> tensor, e.g. from :func:`state_dict_of`.
        source: The file (or loader) it came from, for the message.
        location: Where it was in the file (``'params.'``), prefixed to the key in the message.
        integer_names: Names the network holds integer tensors under.

    Raises:
        CheckpointError: ``<file>: <key> is int8; weights must be floating point`` and the like.
    """
    for name, tensor in state_dict.items():
        key = f'{location}{name}'
        if tensor.layout != torch.strided:
            raise CheckpointError(f'{source}: {key} is a sparse tensor ({str(tensor.layout).removeprefix("torch.")}); '
                                  'weights must be dense')
        if tensor.is_quantized:
            raise CheckpointError(f'{source}: {key} is quantized ({_dtype_name(tensor)}); weights must be floating '
                                  'point')
        integer_allowed = name in integer_names and not tensor.is_floating_point() and tensor.dtype != torch.bool
        if tensor.dtype not in WEIGHT_DTYPES and not integer_allowed:
            raise CheckpointError(f'{source}: {key} is {_dtype_name(tensor)}; weights must be floating point '
                                  f'({", ".join(str(dtype).removeprefix("torch.") for dtype in WEIGHT_DTYPES)})')
    return state_dict


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix('torch.')
