"""Export the generator of an option file to ONNX, check it against PyTorch, and write its model card: the work of
``oisr export``, whose command line and help (the graph's inputs and outputs, NODE-SR, the parity check) are
:mod:`oisr_cli.commands.export`."""

import argparse
import copy
import io
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, UserError, error_status
from ..inference.loading import build_network_from_options, load_option_file, option_scale, weights_path
from ..inference.upsampler import build_upsampler, check_input_image, read_input_image, upsampling_scale
from ..model_capabilities import serves_any_scale
from ..outputs import OutputRules, check_output_path, write_bytes
from ..precisions import PRECISIONS, tensor_dtype
from .model_card import (
    build_model_card,
    experiment_dir_of,
    experiment_files,
    model_card_path,
    write_model_card,
)

DEFAULT_OPSET = 18
MIN_OPSET = 17
# torch.export treats a dimension of size 0 or 1 as a constant, so a dynamic one starts at 2.
MIN_DYNAMIC_SIZE = 2
# Largest accepted difference from PyTorch fp32 (images in [0, 1]): float rounding for fp32; one 8-bit level
# for the 16-bit types, whose own resolution near 1 is about 1e-3.
DEFAULT_TOLERANCE = {'fp32': 1e-4, 'fp16': 4e-3, 'bf16': 4e-3}
DEPENDENCIES = ('onnx', 'onnxscript', 'onnxruntime')


def check_dependencies() -> None:
    """Raise :class:`ExportError` naming every missing package, before any work is done."""
    from importlib.util import find_spec

    missing = [name for name in DEPENDENCIES if find_spec(name) is None]
    if missing:
        raise ExportError(f'{", ".join(missing)} not installed; pip install -e ".[export]" '
                          f'(or pip install {" ".join(missing)})')


@dataclass
class ExportPlan:
    """What to export and what to compare it with.

    Args:
        module: The graph to export (fp32, on the CPU).
        reference: PyTorch's fp32 answer for an LR batch, clipped to [0, 1].
        scale: The upscaling factor.
        dynamic: Whether height, width and batch are dynamic.
        complexity: ``params`` and ``macs`` (720p output) for the model card; ``None``: those of ``network_g``.
        card: Extra model-card fields.
    """

    module: nn.Module
    reference: Callable[[torch.Tensor], torch.Tensor]
    scale: float
    dynamic: bool
    complexity: dict[str, int] | None
    card: dict


def plan_export(opt: dict, weights: str | None, scale: float | None, lr_size: tuple[int, int]) -> ExportPlan:
    """The module to export for an option dict: its network, or NODE-SR unrolled for ``scale``."""
    if serves_any_scale(opt):
        # The module the parity reference runs, its scale fixed, is the graph: the same function, traced.
        upsampler = build_upsampler(opt, weights, 'cpu', scale=scale)
        nodesr = upsampler.nodesr
        if nodesr.ode.adaptive:
            raise ExportError(f'ode.solver {nodesr.ode.solver} chooses its steps at run time, which a graph cannot; '
                              'export with a fixed-step solver (e.g. ode.solver: rk4, ode.num_steps: 1)')
        complexity = {'params': sum(p.numel() for p in nodesr.parameters()),
                      'macs': nodesr.macs((720, 1280), opt['network_g'].get('num_in_ch', 3))}
        card = {'solver': nodesr.ode.solver, 'solverSteps': nodesr.ode.steps_for(float(scale)),
                'networkEvaluations': nodesr.network_evaluations(), 'lrSize': list(lr_size)}
        return ExportPlan(nodesr, upsampler, float(scale), False, complexity, card)
    net_scale = option_scale(opt)
    if scale is not None and scale != net_scale:
        raise ExportError(f'--scale {scale}: network_g ({opt["network_g"]["type"]}) upscales by {net_scale} only')
    net = build_network_from_options(opt, weights)

    def reference(lq: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(lq).clamp(0, 1)

    return ExportPlan(net, reference, net_scale, True, None, {})




def export_onnx(net: nn.Module,
                scale: float,
                arch: str = '',
                opset: int = DEFAULT_OPSET,
                sample_size: tuple[int, int] = (64, 64),
                precision: str = 'fp32',
                dynamic: bool = True,
                in_channels: int = 3) -> bytes:
    """Export ``net`` (on the CPU) to ONNX, in memory: nothing is written before the caller has checked it.

    Args:
        net: The network; it maps ``N x C x H x W`` to ``N x C x sH x sW``.
        scale: Its upscaling factor, stored as metadata.
        arch: Architecture name, stored as metadata.
        opset: ONNX opset version, at least 17.
        sample_size: LR ``(height, width)`` of the example input that is traced.
        precision: ``fp32``, ``fp16`` or ``bf16``: the type of the weights, the input and the output.
        dynamic: Dynamic batch, height and width (``torch.export``); otherwise the graph is traced for
            ``sample_size`` and batch 1 (TorchScript tracing, which follows Python control flow such as an
            ODE solver's loop, unrolled).
        in_channels: Channels of the input image.

    Returns:
        The serialised ONNX model.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ExportError(f'opset {opset} is too old; use {MIN_OPSET} or later')
    if precision not in PRECISIONS:
        raise ExportError(f'precision {precision!r} is not supported; choose one of {", ".join(PRECISIONS)}')
    dtype = tensor_dtype(precision)
    # A copy: casting the caller's network to fp16 and back would round the weights of the parity reference.
    net = copy.deepcopy(net).cpu().eval().to(dtype)
    sample = torch.rand(1, in_channels, *sample_size).to(dtype)
    try:
        if dynamic:
            dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim('height', min=MIN_DYNAMIC_SIZE),
                    3: torch.export.Dim('width', min=MIN_DYNAMIC_SIZE)}
            model = torch.onnx.export(net, (sample, ), input_names=['lq'], output_names=['sr'], opset_version=opset,
                                      dynamo=True, dynamic_shapes=(dims, ), external_data=False,
                                      verbose=False).model_proto
        else:
            buffer = io.BytesIO()
            # The tracer warns that shapes and loops are baked in: they are, the graph is for one LR size.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter('ignore', torch.jit.TracerWarning)
                torch.onnx.export(net, (sample, ), buffer, input_names=['lq'], output_names=['sr'],
                                  opset_version=opset, dynamo=False, verbose=False)
            model = onnx.load_model_from_string(buffer.getvalue())
    except Exception as error:  # torch.export and onnxscript raise many types; all mean the same here
        raise ExportError(f'torch.onnx.export failed for {type(net).__name__}: {str(error).splitlines()[0]}') from None
    onnx.helper.set_model_props(model, {'scale': f'{scale:g}', 'arch': arch or type(net).__name__,
                                        'precision': precision, 'opset': str(opset)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def verify_onnx(model: str | Path | bytes, reference, inputs: Sequence[torch.Tensor], precision: str = 'fp32') -> float:
    """Largest absolute difference between onnxruntime and ``reference`` over ``inputs``, outputs clipped to [0, 1].

    Args:
        model: The exported model: its file, or its bytes (:func:`export_onnx`).
        reference: PyTorch in fp32: a network, or any callable mapping an LR batch to its SR batch.
        inputs: LR batches (fp32, in [0, 1]); they are cast to ``precision`` for onnxruntime.
        precision: The exported model's input type.
    """
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model),
                                               providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime raises its own exception types, one per failure
        reason = str(error).splitlines()[0]
        raise ExportError(f'onnxruntime cannot run the {precision} graph ({reason}); export fp32 or fp16 '
                          'instead') from None
    worst = 0.0
    for lq in inputs:
        with torch.inference_mode():
            expected = torch.as_tensor(reference(lq)).float().clamp(0, 1).numpy()
        try:
            (result, ) = session.run(['sr'], {'lq': lq.to(tensor_dtype(precision)).numpy()})
        except (TypeError, RuntimeError) as error:  # numpy has no bfloat16, for one
            raise ExportError(f'onnxruntime cannot be fed a {precision} input here: {error}') from None
        result = result.astype(np.float32)
        if result.shape != expected.shape:
            raise ExportError(f'for a {tuple(lq.shape[-2:])} input ONNX gives shape {result.shape}, '
                              f'PyTorch {expected.shape}')
        # Before clipping, which would turn infinity into 1; a NaN would compare as a difference of 0.
        if not np.isfinite(result).all():
            raise ExportError(f'onnxruntime gives NaN or infinity for a {tuple(lq.shape[-2:])} input: the {precision} '
                              f'graph overflows (weights or activations beyond the range of {precision}) or is broken')
        # np.maximum, not max(): Python's max(0.0, nan) is 0.0, so a NaN from the reference would pass.
        worst = float(np.maximum(worst, np.abs(np.clip(result, 0, 1) - expected).max()))
    return worst


def parity_inputs(image: str | None, sample_size: tuple[int, int], dynamic: bool, channels: int = 3,
                  seed: int = 0, scale: float = 1) -> list[torch.Tensor]:
    """The LR batches parity is checked on: the user's image (RGB in [0, 1], or its gray level for a one-channel
    network; read through the image gate, so a file that is damaged or has a side shorter than ``scale`` is
    refused) or a generated smooth one of ``sample_size``, and for a dynamic graph a generated one of another size
    (odd sides, both changed)."""
    generator = torch.Generator().manual_seed(seed)

    def generated(height: int, width: int) -> torch.Tensor:
        coarse = torch.rand(1, channels, height // 4 + 2, width // 4 + 2, generator=generator)
        return torch.nn.functional.interpolate(coarse, size=(height, width), mode='bicubic').clamp(0, 1)

    if image is not None:
        img = read_input_image(check_input_image(image, scale))
        max_value = float(np.iinfo(img.dtype).max)
        bgr = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        first = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / max_value)
        first = first.permute(2, 0, 1)[None]
        if channels == 1:
            first = first.mean(dim=1, keepdim=True)
    else:
        first = generated(*sample_size)
    inputs = [first]
    if dynamic:
        height, width = first.shape[-2:]
        inputs.append(generated(height + 13, width + 7))
    return inputs


def run(args: argparse.Namespace) -> int:
    """Export, check parity and write the model card (the command line of ``oisr export``:
    :mod:`oisr_cli.commands.export`); returns the exit status."""
    tolerance = args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE[args.precision]
    try:
        check_dependencies()
        opt = load_option_file(args.opt)
        weights = weights_path(opt, args.weights)
        experiment = args.experiment or experiment_dir_of(weights)
        rules = OutputRules({'the option file': args.opt, 'the checkpoint': weights,
                             'the parity image': args.parity_image,
                             'a file the model card is made from': experiment_files(experiment)})
        output = args.output
        for path in (output, model_card_path(output)):  # refused before any work
            check_output_path(path, rules)
        channels = opt['network_g'].get('num_in_ch', 3)
        inputs = parity_inputs(args.parity_image, tuple(args.sample_size), not serves_any_scale(opt), channels,
                               scale=upsampling_scale(opt, args.scale))
        plan = plan_export(opt, args.weights, args.scale, tuple(inputs[0].shape[-2:]))
        model = export_onnx(plan.module, plan.scale, opt['network_g']['type'], args.opset,
                            tuple(inputs[0].shape[-2:]), args.precision, plan.dynamic, channels)
        difference = verify_onnx(model, plan.reference, inputs, args.precision)
        sizes = ', '.join('x'.join(map(str, lq.shape[-2:])) for lq in inputs)
        source = args.parity_image or 'a generated image'
        print(f'parity, onnxruntime {args.precision} vs PyTorch fp32 on {source} ({sizes} LR): '
              f'max abs difference {difference:.2e} (tolerance {tolerance:g})')
        if not difference <= tolerance:
            raise ExportError(f'onnxruntime and PyTorch differ by {difference:.2e} > {tolerance:g}; nothing '
                              'was written')
        write_bytes(output, model, rules)
        axes = 'dynamic batch, height and width' if plan.dynamic else \
            f'fixed {inputs[0].shape[-2]}x{inputs[0].shape[-1]} LR input, batch 1'
        print(f'wrote {output} (x{plan.scale:g}, {args.precision}, opset {args.opset}, {axes})')
        extra = {'onnx': {'opset': args.opset, 'precision': args.precision, 'dynamicAxes': plan.dynamic,
                          'input': 'lq', 'output': 'sr', 'parityMaxAbsDifference': difference}, **plan.card}
        card = build_model_card(opt['network_g'], plan.scale, output, experiment, plan.complexity, extra)
        print(f'wrote {write_model_card(card, output, rules)}')
    except (UserError, OSError) as error:  # OSError: a missing file, a folder that cannot be written
        return error_status(error)
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.export import main  # the command line is the `oisr` command's

    sys.exit(main())
