"""Build a trained network from a BasicSR option file, outside BasicSR's train and test pipelines.

Inference, ONNX export and model comparison need the generator alone: no datasets, no log folders,
no distributed set-up. These helpers read the option file as plain data, like the entry points
(:func:`~oisr_basicsr.options.read_option_file`), build ``network_g`` from the registry and load its weights
through the package's one reader of weights (:func:`~oisr_basicsr.checkpoints.weights.load_weights`).
"""

import os
from pathlib import Path

from basicsr.archs import build_network
from torch import nn

from ..checkpoints.weights import load_weights
from ..errors import CheckpointError, OptionError
from ..options import check_option_schema, options_as_read, read_option_file


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


def weights_path(opt: dict, weights: str | os.PathLike | None = None) -> Path | None:
    """The checkpoint ``network_g``'s weights come from: ``weights`` (e.g. ``--weights``), else the option file's
    ``path.pretrain_network_g``, with ``~`` expanded; None when neither names one."""
    weights = weights if weights is not None else (opt.get('path') or {}).get('pretrain_network_g')
    return None if weights is None else Path(os.path.expanduser(str(weights)))


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
    weights = weights_path(opt, weights)
    try:
        net = build_network(dict(opt['network_g']))
    except (KeyError, TypeError, ValueError) as error:
        raise OptionError(f'network_g ({opt["network_g"].get("type")}) cannot be built: {error}') from None
    if weights is None:
        if not allow_random and any(True for _ in net.parameters()):
            raise OptionError('no weights: set path.pretrain_network_g in the option file or pass a checkpoint')
        return net.eval()
    state_dict = load_weights(weights, path_opt.get('param_key_g', 'params'),
                              trusted=bool(path_opt.get('trust_checkpoints', False)), network=net)
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
