"""Saving and loading checkpoints so that a crash never costs more than the work since the last save.

* :func:`atomic_save` writes through :func:`~oisr_basicsr.outputs.atomic_output`: a temporary file
  in the same folder renamed over the target, so a reader sees either the old file or the new one, never a
  truncated one (and nothing is written through a link planted at the target).
* :func:`safe_load` unpickles with ``weights_only=True``: tensors, numbers,
  strings and plain containers load; anything that could run code is refused
  with :class:`UnsafeCheckpointError`, which says how to load a trusted file.
* A path ending in ``.safetensors`` is written and read in the safetensors format instead (no pickle at
  all; see :func:`safetensors_bytes`), which tools outside PyTorch training code read.
* :func:`check_finite` refuses loaded weights holding NaN or infinity, which a
  network would turn into black images and meaningless metrics without a word.
* :func:`capture_rng_state` / :func:`restore_rng_state` carry every random
  generator a training step touches, in a form ``weights_only`` accepts.
"""

import os
import pickle
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, NonFiniteWeightsError, UnsafeCheckpointError
from ..outputs import DEFAULT_RULES, OutputRules, atomic_output

SAFETENSORS_SUFFIX = '.safetensors'
# The types a network computes in (float8 and the like are storage formats that need their own scaling).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# safetensors metadata key listing the BasicSR entries (``params``, ``params_ema``) a file holds.
PARAM_KEYS_METADATA = 'param_keys'


def atomic_save(obj: Any, path: str | os.PathLike, rules: OutputRules = DEFAULT_RULES) -> None:
    """``torch.save`` to ``path`` (safetensors for a ``.safetensors`` path) through
    :func:`~oisr_basicsr.outputs.atomic_output`.

    Args:
        obj: What to save.
        path: Target file; its folder must exist, and it must not be a link or anything but a regular file.
        rules: The run's inputs and its policy for an existing file (by default replaced).
    """
    with atomic_output(path, rules) as file:
        if Path(path).suffix == SAFETENSORS_SUFFIX:
            file.write(safetensors_bytes(obj))
        else:
            torch.save(obj, file)


def _tensors(obj: Any, key: str = '') -> Iterator[tuple[str, torch.Tensor]]:
    # Depth first, in the file's own order, with dotted keys such as params.conv_first.weight.
    if isinstance(obj, torch.Tensor):
        yield key, obj
    elif isinstance(obj, dict):
        for name, value in obj.items():
            yield from _tensors(value, f'{key}.{name}' if key else str(name))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _tensors(value, f'{key}.{index}' if key else str(index))


def check_finite(obj: Any, path: str | os.PathLike) -> Any:
    """Return ``obj`` (a loaded checkpoint or training state) if all its floating-point tensors are finite.

    Args:
        obj: What was loaded: a state dict, BasicSR's ``{'params': ...}``, a training state, ...
        path: The file it came from, for the message.

    Raises:
        NonFiniteWeightsError: naming the file and the first key holding NaN or infinity.
    """
    for key, tensor in _tensors(obj):
        # Sparse, quantized and float8 tensors have no isfinite; they are no weights a network computes with, and
        # the weights gate (.weights) refuses them by name.
        checkable = tensor.layout == torch.strided and (tensor.dtype in WEIGHT_DTYPES or tensor.is_complex())
        if checkable and not torch.isfinite(tensor).all():
            count = int((~torch.isfinite(tensor)).sum())
            raise NonFiniteWeightsError(
                f'{path} was not loaded: {key} holds {count} non-finite value(s) (NaN or inf); a network with '
                'them gives black images and meaningless metrics. Use an earlier checkpoint.')
    return obj


def safe_load(path: str | os.PathLike, map_location: Any = 'cpu', trusted: bool = False) -> Any:
    """Load a checkpoint without executing code from it.

    Args:
        path: A file written by ``torch.save``, or a ``.safetensors`` file (read by
            :func:`load_safetensors`, never unpickled, whatever ``trusted`` says).
        map_location: Passed to ``torch.load``.
        trusted: Load with ``weights_only=False``, i.e. run whatever the file
            says. Only for files you made yourself.

    Raises:
        UnsafeCheckpointError: The file holds more than tensors and plain data.
    """
    if Path(path).suffix == SAFETENSORS_SUFFIX:
        return load_safetensors(path, map_location)
    if trusted:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is long; the line naming the refused global is the useful part.
        reason = next((line.strip() for line in str(error).splitlines() if 'GLOBAL' in line),
                      'not a weights-only file')
        raise UnsafeCheckpointError(
            f'{path} was not loaded: it holds objects other than tensors and plain data, and unpickling them '
            f'could run arbitrary code ({reason}). If you made the file yourself and trust it, set '
            f'`trust_checkpoints: true` under `path:` in the option file (or pass trusted=True), or, for a whole '
            'model saved with torch.save(model), save its weights instead: '
            'torch.save(torch.load(path, weights_only=False).state_dict(), "state_dict.pt").') from None


def safetensors_bytes(obj: dict) -> bytes:
    """A state dict, or BasicSR's ``{'params': state_dict, ...}``, in the safetensors format.

    One state dict is stored with its own names, as other tools (spandrel, chaiNNer) expect; several
    (``params`` and ``params_ema`` of an EMA run) are stored as ``<param_key>.<name>``. The metadata
    entry ``param_keys`` lists the BasicSR entries, so :func:`load_safetensors` rebuilds the same dict.
    """
    from safetensors.torch import save

    metadata = None
    if not all(isinstance(value, torch.Tensor) for value in obj.values()):
        if not all(isinstance(value, dict) for value in obj.values()):
            raise TypeError('safetensors holds tensors only: give a state dict or a dict of state dicts')
        keys = list(obj)
        metadata = {PARAM_KEYS_METADATA: ','.join(keys)}
        obj = obj[keys[0]] if len(keys) == 1 else {f'{key}.{name}': tensor for key in keys
                                                   for name, tensor in obj[key].items()}
    return save({name: tensor.detach().cpu().contiguous() for name, tensor in obj.items()}, metadata=metadata)


def load_safetensors(path: str | os.PathLike, map_location: Any = 'cpu') -> dict:
    """Read a ``.safetensors`` file: its state dict, or the dict of state dicts :func:`safetensors_bytes` wrote.

    The format is a JSON header and raw tensor bytes, so nothing in the file is executed.
    """
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        with safe_open(str(path), framework='pt', device=device) as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f'cannot read {path} as a safetensors file: {error}') from None
    keys = [key for key in metadata.get(PARAM_KEYS_METADATA, '').split(',') if key]
    if len(keys) == 1:
        return {keys[0]: tensors}
    if len(keys) > 1:
        return group_by_param_key(tensors, keys)
    return tensors


def group_by_param_key(tensors: Mapping[str, torch.Tensor], keys: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
    """``{key: {name: tensor}}`` from weight sets stored flat as ``<key>.<name>`` (several in one safetensors
    file, see :func:`safetensors_bytes`)."""
    return {key: {name[len(key) + 1:]: tensor for name, tensor in tensors.items() if name.startswith(f'{key}.')}
            for key in keys}


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'name': name, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`; CUDA states are restored only where a GPU is present."""
    random.setstate(_as_tuples(state['python']))
    numpy_state = state['numpy']
    np.random.set_state((numpy_state['name'], numpy_state['keys'].numpy().astype(np.uint32), numpy_state['pos'],
                         numpy_state['has_gauss'], numpy_state['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def _as_tuples(value: Any) -> Any:
    # random.setstate needs tuples; a round trip through some loaders turns them into lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def load_first_valid(paths: list[str], loader: Callable[[str], Any],
                     warn: Callable[[str], None]) -> tuple[str | None, Any]:
    """Load the first of ``paths`` that loads; warn about each one that does not.

    Returns ``(path, content)``, or ``(None, None)`` when none loads. An unsafe
    file is not skipped: its error is raised, since skipping it would silently
    resume from an older state.
    """
    for path in paths:
        try:
            return path, loader(path)
        except UnsafeCheckpointError:
            raise
        except (RuntimeError, EOFError, pickle.UnpicklingError, OSError, KeyError) as error:
            warn(f'Skipping unreadable training state {path}: {error}')
    return None, None
