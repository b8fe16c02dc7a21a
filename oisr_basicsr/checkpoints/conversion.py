"""Convert the OISR authors' checkpoints (HolmesShuan/OISR-PyTorch) into this package's :class:`OISR`.

The authors' code is an EDSR-PyTorch copy per model and saves ``model.state_dict()``: ``sub_mean`` /
``add_mean`` (their mean shift, a 1x1 conv), ``head.0``, ``body.{i}.conv{k}`` / ``relu{k}`` / ``scale{k}``
for the ODE blocks, ``body.{N}`` (the conv after the blocks), ``tail.0.{2j}`` (upsampler convs) and
``tail.1``. :func:`authors_key_map` maps every one of these names to the package's name for the same
tensor; the tensors themselves are copied unchanged.

Why the networks compute the same function: the authors feed pixels in [0, 255] through
``sub_mean -> head -> body (+ long skip) -> tail -> add_mean``; the package's OISR (``img_range`` 255)
computes ``add_mean(... sub_mean(255 * x)) / 255`` with the same layers, so its output on ``x`` in
[0, 1] is theirs on ``255 * x``, divided by 255. Their mean shift was trainable by mistake; its
(possibly drifted) weight and bias become the package's mean-shift buffers, so the drift is kept.

Files are read by the package's one reader of weights (:func:`~.weights.load_weights`: ``torch.load(weights_only=
True)``, or for ``.safetensors`` no pickle at all): a checkpoint is data, and a full pickle can run any code the
file names while it loads. The output is written as ``.pth`` or ``.safetensors`` by its suffix.
"""

import math
import os
from collections.abc import Mapping

import torch

from ..archs.ode_schemes import check_choice
from ..archs.oisr_arch import PAPER_MODELS, build_paper_model
from ..errors import CheckpointError
from ..outputs import OutputRules, check_output_path
from .io import SAFETENSORS_SUFFIX, atomic_save
from .weights import load_weights

PathLike = str | os.PathLike
SCALES = (2, 3, 4)
OUTPUT_SUFFIXES = ('.pth', SAFETENSORS_SUFFIX)

# Per step function G of the package's block (in execution order): the numbers k of the authors'
# relu{k} / conv{k} pairs it is made of. All paper models use PReLU-first G (v2: PReLU-Conv,
# v3: PReLU-Conv-PReLU-Conv), so pair j sits at positions 2j (PReLU) and 2j + 1 (conv) of G.
# The authors' RK2 numbers its layers out of execution order: G1 = conv3(relu3(conv1(relu1(y)))).
_STEP_LAYERS = {'lf': ((1, ), (2, ), (3, ), (4, )), 'rk2': ((1, 3), (2, 4)), 'rk3': ((1, ), (2, ), (3, ))}
_NUM_SCALARS = {'lf': 4, 'rk2': 1, 'rk3': 5}


def authors_key_map(model: str, scale: int) -> dict[str, str]:
    """The authors' state-dict key -> the package's key, for one paper model.

    Args:
        model: Paper model name, a key of :data:`~oisr_basicsr.archs.oisr_arch.PAPER_MODELS`
            (``LF-s``, ``RK2-s``, ``LF``, ``RK2``, ``RK3``).
        scale: Upscaling factor: 2, 3 or 4.

    Returns:
        One entry per tensor of the authors' checkpoint, in their order.
    """
    _check_model(model, scale)
    arch = PAPER_MODELS[model]
    scheme, num_block = arch['scheme'], arch['num_block']
    key_map = {f'sub_mean.{p}': f'sub_mean.{p}' for p in ('weight', 'bias')}

    def conv(authors: str, ours: str) -> None:
        key_map.update({f'{authors}.{p}': f'{ours}.{p}' for p in ('weight', 'bias')})

    conv('head.0', 'conv_first')
    for i in range(num_block):
        for step, numbers in enumerate(_STEP_LAYERS[scheme]):
            for j, k in enumerate(numbers):
                key_map[f'body.{i}.relu{k}.weight'] = f'body.blocks.{i}.steps.{step}.{2 * j}.weight'
                conv(f'body.{i}.conv{k}', f'body.blocks.{i}.steps.{step}.{2 * j + 1}')
        for k in range(1, _NUM_SCALARS[scheme] + 1):
            key_map[f'body.{i}.scale{k}'] = f'body.blocks.{i}.scale{k}'
    conv(f'body.{num_block}', 'body.conv_after_body')
    # x3 has one conv + PixelShuffle(3); x2^n has n pairs conv + PixelShuffle(2), in both layouts.
    num_upsample_convs = 1 if scale == 3 else int(math.log2(scale))
    for j in range(num_upsample_convs):
        conv(f'tail.0.{2 * j}', f'upsample.{2 * j}')
    conv('tail.1', 'conv_last')
    key_map.update({f'add_mean.{p}': f'add_mean.{p}' for p in ('weight', 'bias')})
    return key_map


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], model: str, scale: int,
                       source: str = 'the checkpoint') -> dict[str, torch.Tensor]:
    """Rename the authors' tensors to the package's names after checking names and shapes exactly.

    Args:
        state_dict: The authors' state dict (see :func:`~.weights.load_weights`).
        model: Paper model name (``LF-s``, ``RK2-s``, ``LF``, ``RK2``, ``RK3``).
        scale: Upscaling factor: 2, 3 or 4.
        source: How to name the checkpoint in error messages, e.g. its path.

    Returns:
        A state dict that loads strictly into ``build_paper_model(model, scale)``, i.e. the
        ``network_g`` of ``options/test_OISR_<model>_x<scale>.yml``.

    Raises:
        CheckpointError: Naming every missing key, every unexpected key and every key whose
            shape differs from the model's.
    """
    key_map = authors_key_map(model, scale)
    expected = _expected_shapes(model, scale, key_map)
    problems = _layout_problems(state_dict, expected)
    if problems:
        matches = [f'--model {other} --scale {s}' for other in PAPER_MODELS for s in SCALES
                   if (other, s) != (model, scale) and not _layout_problems(state_dict, _expected_shapes(other, s))]
        hint = f'\nIt matches {" / ".join(matches)}.' if matches else ''
        raise CheckpointError(f'{source} is not an OISR-{model} x{scale} checkpoint in the authors\' layout '
                              f'({len(state_dict)} tensors, {len(expected)} expected):\n' + '\n'.join(problems) + hint)
    return {key_map[key]: state_dict[key] for key in key_map}


def convert_checkpoint(input_path: PathLike, output_path: PathLike, model: str, scale: int) -> int:
    """Convert an authors' checkpoint file into a BasicSR one (``{'params': state_dict}``).

    Nothing is written unless the whole input checks out; the output appears complete or not at all, and an
    existing file is never replaced.

    Args:
        input_path: The authors' ``.pt`` (or ``.safetensors``) file.
        output_path: The ``.pth`` or ``.safetensors`` file to create; must not exist yet. Point ``path:
            pretrain_network_g`` of ``options/test_OISR_<model>_x<scale>.yml`` at it.
        model: Paper model name (``LF-s``, ``RK2-s``, ``LF``, ``RK2``, ``RK3``).
        scale: Upscaling factor: 2, 3 or 4.

    Returns:
        The number of tensors written.
    """
    _check_model(model, scale)
    rules = conversion_rules(input_path)
    output_path = check_output_path(output_path, rules)
    if output_path.suffix not in OUTPUT_SUFFIXES:
        raise CheckpointError(f'{output_path}: the output must end in {" or ".join(OUTPUT_SUFFIXES)}')
    params = convert_state_dict(load_weights(input_path), model, scale, source=str(input_path))
    atomic_save({'params': params}, output_path, rules)
    return len(params)


def conversion_rules(input_path: PathLike) -> OutputRules:
    """What a conversion writes under: never over its input, never over an existing file."""
    return OutputRules({'the input checkpoint': input_path}, replace=False)


def _check_model(model: str, scale: int) -> None:
    check_choice('model', model, tuple(PAPER_MODELS))
    check_choice('scale', scale, SCALES)


def _expected_shapes(model: str, scale: int, key_map: dict[str, str] | None = None) -> dict[str, tuple[int, ...]]:
    key_map = key_map or authors_key_map(model, scale)
    # The meta device gives every shape without allocating RK3's 44M parameters.
    with torch.device('meta'):
        ours = build_paper_model(model, scale).state_dict()
    return {authors: tuple(ours[key].shape) for authors, key in key_map.items()}


def _layout_problems(state_dict: Mapping[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> list[str]:
    problems = []
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    misshaped = [f'{key} {tuple(state_dict[key].shape)} (expected {shape})' for key, shape in expected.items()
                 if key in state_dict and tuple(state_dict[key].shape) != shape]
    for title, keys in (('missing', missing), ('unexpected', unexpected), ('wrong shape', misshaped)):
        if keys:
            problems.append(f'  {title} ({len(keys)}): {", ".join(keys)}')
    return problems
