"""Build a trained network from a BasicSR option file, outside BasicSR's train and test pipelines.

Inference, ONNX export and model comparison need the generator alone: no datasets, no log folders,
no distributed set-up. These helpers read the option file as plain data, like the entry points
(:func:`~oisr_basicsr.options.read_option_file`), build ``network_g`` from the registry and load the
checkpoint safely (``torch.load(weights_only=True)``, finite values only), accepting BasicSR's layout
(``params`` / ``params_ema``), a bare state dict and DataParallel's ``module.`` prefix.
"""

import os
from pathlib import Path

import torch
from basicsr.archs import build_network
from torch import nn

from ..errors import CheckpointError, NonFiniteWeightsError, OptionError, UnsafeCheckpointError
from ..options import check_option_schema, options_as_read, read_option_file
from .io import check_finite, safe_load

PARAM_KEYS = ('params', 'params_ema')


def load_option_file(path: str | os.PathLike) -> dict:
    """Read a BasicSR option YAML file and check it against the option schema, ``network_g`` in full.

    Args:
        path: The option file.

    Returns:
        The options as a dict, with the values as the schema read them
        (:func:`~oisr_basicsr.options.options_as_read`); ``network_g`` is known to name a registered
        architecture whose constructor accepts its keys.
    """
    path = Path(path)
    if not path.is_file():
        raise OptionError(f'option file not found: {path}')
    opt = read_option_file(path)
    if not isinstance(opt.get('network_g'), dict):
        raise OptionError(f'{path} has no network_g section')
    try:
        return options_as_read(opt, check_option_schema(opt, training=False, run=False))
    except OptionError as error:
        raise OptionError(f'{path}: {error}') from None


def option_scale(opt: dict) -> int:
    """The integer upscaling factor of an option dict: top-level ``scale``, else ``network_g.upscale``."""
    candidates = (opt.get('scale'), opt['network_g'].get('upscale'))
    scale = next((value for value in candidates if value is not None), None)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise OptionError(f'the options give no integer scale (scale: {opt.get("scale")!r}, '
                          f'network_g.upscale: {opt["network_g"].get("upscale")!r})')
    return scale


def load_state_dict(path: str | os.PathLike, param_key: str | None = 'params') -> dict[str, torch.Tensor]:
    """The network weights in a checkpoint file, without DataParallel's ``module.`` prefix.

    Args:
        path: A ``.pth`` or ``.safetensors`` file: BasicSR's ``{'params': ..., 'params_ema': ...}`` or a bare
            state dict.
        param_key: Entry to use in BasicSR's layout. When it is missing and the file holds exactly
            one of ``params`` / ``params_ema``, that one is used (BasicSR falls back the same way).
            ``None`` requires a bare state dict.

    Returns:
        Parameter name to tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        checkpoint = check_finite(safe_load(path), path)
    except (UnsafeCheckpointError, NonFiniteWeightsError) as error:
        raise CheckpointError(str(error)) from None
    except Exception as error:  # torch raises many types for a bad file (pickle, zip, EOF); all mean the same
        raise CheckpointError(f'cannot load checkpoint {path}: {error}') from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path} holds a {type(checkpoint).__name__}, not a state dict')
    is_bare = all(isinstance(value, torch.Tensor) for value in checkpoint.values())
    if param_key is not None and not is_bare:
        if param_key not in checkpoint:
            present = [key for key in PARAM_KEYS if key in checkpoint]
            if len(present) != 1:
                raise CheckpointError(f'{path} has no {param_key!r} entry; its entries are: '
                                      f'{", ".join(map(str, checkpoint))}')
            param_key = present[0]
        checkpoint = checkpoint[param_key]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f'{path} holds no state dict of tensors (param_key: {param_key!r})')
    state_dict = {key.removeprefix('module.'): value for key, value in checkpoint.items()}
    try:
        check_finite(state_dict, path)
    except NonFiniteWeightsError as error:
        raise CheckpointError(str(error)) from None
    return state_dict


def build_network_from_options(opt: dict,
                               weights: str | os.PathLike | None = None,
                               allow_random: bool = False) -> nn.Module:
    """``network_g`` of an option dict, with its weights loaded, in eval mode on the CPU.

    Args:
        opt: Options, e.g. from :func:`load_option_file`.
        weights: Checkpoint that replaces ``path.pretrain_network_g``.
        allow_random: Keep the random initial weights when neither gives a checkpoint; otherwise
            that is an error (unless the network has no parameters, like ``Bicubic``).

    Returns:
        The network. Loading is strict unless ``path.strict_load_g`` is false.
    """
    path_opt = opt.get('path') or {}
    weights = weights if weights is not None else path_opt.get('pretrain_network_g')
    try:
        net = build_network(dict(opt['network_g']))
    except (KeyError, TypeError, ValueError) as error:
        raise OptionError(f'network_g ({opt["network_g"].get("type")}) cannot be built: {error}') from None
    if weights is None:
        if not allow_random and any(True for _ in net.parameters()):
            raise OptionError('no weights: set path.pretrain_network_g in the option file or pass a checkpoint')
        return net.eval()
    weights = Path(os.path.expanduser(str(weights)))
    state_dict = load_state_dict(weights, path_opt.get('param_key_g', 'params'))
    strict = path_opt.get('strict_load_g', True)
    try:
        missing, unexpected = net.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # a shape mismatch, which strict=False does not excuse
        reason = ' '.join(str(error).split())  # torch's message spans lines; errors are reported on one
        raise CheckpointError(f'{weights} does not fit network_g ({opt["network_g"]["type"]}): {reason}') from None
    if strict and (missing or unexpected):
        raise CheckpointError(f'{weights} does not fit network_g ({opt["network_g"]["type"]}): '
                              f'missing keys: {", ".join(missing) or "none"}; '
                              f'unexpected keys: {", ".join(unexpected) or "none"}')
    return net.eval()
