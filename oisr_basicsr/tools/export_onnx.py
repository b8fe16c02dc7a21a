"""Export the generator of an option file to ONNX, check it against PyTorch, and write its model card.

    oisr export -opt options/test_OISR_RK3_x4.yml [--weights net_g.pth] --output oisr_rk3_x4.onnx \\
        [--precision fp16] [--opset 18] [--parity-image photo.png]
    oisr export -opt options/test_NODESR_VDSR_B100.yml --scale 2.5 --sample-size 120 160 \\
        --output nodesr_vdsr_x2.5.onnx

Fixed-scale networks (OISR, EDSR, RCAN, ...): one input ``lq`` (``N x C x H x W`` RGB in [0, 1]) and one
output ``sr`` (``N x C x sH x sW``, not clipped), with dynamic batch, height and width (``torch.export``).
``--precision fp16`` (or ``bf16``) exports the network in that type: input and output are then fp16
(bf16) tensors, as deployment tools that run fp16 models expect.

NODE-SR (``model_type: NODESRModel``) is exported for one scale ``--scale t`` and the option file's
fixed-step solver: the bicubic ``I(t)`` and every solver step are unrolled into the graph, which
therefore has a fixed LR size (``--sample-size``, or the parity image's size) and batch 1; the output
is ``floor(h t) x floor(w t)``.

The exporter checks parity itself before anything is written: onnxruntime (CPU) runs the graph on
``--parity-image`` (or a generated image of ``--sample-size``) and, for dynamic graphs, on a second
generated image of another size, and the largest absolute difference from PyTorch in fp32 (the
package's own NODE-SR inference for NODE-SR), on outputs clipped to [0, 1], is printed; above
``--tolerance`` (default 1e-4 for fp32, 4e-3, one 8-bit level, for fp16 / bf16) it is an error. A graph
onnxruntime cannot run (bf16 convolutions on the CPU provider) is an error too. The model's metadata
holds ``scale``, ``arch``, ``precision`` and ``opset``; a model card (``<output>.card.json``, see
``oisr_basicsr.checkpoints.card``) is written beside it. Needs ``onnx``, ``onnxscript`` and
``onnxruntime`` (``pip install -e .[export]``). Errors are printed as ``error: <message>`` with exit
status 2.
"""

import argparse
import copy
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoints.card import build_model_card, experiment_dir_of, write_model_card
from ..checkpoints.loading import build_network_from_options, load_option_file, option_scale
from ..errors import UserError, error_status
from ..inference.upsampler import build_upsampler, read_image
from ..model_capabilities import serves_any_scale

DEFAULT_OPSET = 18
MIN_OPSET = 17
# torch.export treats a dimension of size 0 or 1 as a constant, so a dynamic one starts at 2.
MIN_DYNAMIC_SIZE = 2
PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
# Largest accepted difference from PyTorch fp32 (images in [0, 1]): float rounding for fp32; one 8-bit level
# for the 16-bit types, whose own resolution near 1 is about 1e-3.
DEFAULT_TOLERANCE = {'fp32': 1e-4, 'fp16': 4e-3, 'bf16': 4e-3}
DEPENDENCIES = ('onnx', 'onnxscript', 'onnxruntime')


class ExportError(Exception):
    """The network cannot be exported or the export disagrees with PyTorch."""


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


@contextmanager
def _temporary_file_beside(path: Path):
    """A temporary file name in ``path``'s folder (removed on exit unless it was renamed away)."""
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def export_onnx(net: nn.Module,
                path: str | Path,
                scale: float,
                arch: str = '',
                opset: int = DEFAULT_OPSET,
                sample_size: tuple[int, int] = (64, 64),
                precision: str = 'fp32',
                dynamic: bool = True,
                in_channels: int = 3) -> Path:
    """Export ``net`` (on the CPU) to an ONNX file.

    Args:
        net: The network; it maps ``N x C x H x W`` to ``N x C x sH x sW``.
        path: The ``.onnx`` file to write.
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
        ``path``.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ExportError(f'opset {opset} is too old; use {MIN_OPSET} or later')
    if precision not in PRECISIONS:
        raise ExportError(f'precision {precision!r} is not supported; choose one of {", ".join(PRECISIONS)}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = PRECISIONS[precision]
    # A copy: casting the caller's network to fp16 and back would round the weights of the parity reference.
    net = copy.deepcopy(net).cpu().eval().to(dtype)
    sample = torch.rand(1, in_channels, *sample_size).to(dtype)
    try:
        if dynamic:
            dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim('height', min=MIN_DYNAMIC_SIZE),
                    3: torch.export.Dim('width', min=MIN_DYNAMIC_SIZE)}
            torch.onnx.export(net, (sample, ), str(path), input_names=['lq'], output_names=['sr'],
                              opset_version=opset, dynamo=True, dynamic_shapes=(dims, ), external_data=False,
                              verbose=False)
        else:
            # The tracer warns that shapes and loops are baked in: they are, the graph is for one LR size.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter('ignore', torch.jit.TracerWarning)
                torch.onnx.export(net, (sample, ), str(path), input_names=['lq'], output_names=['sr'],
                                  opset_version=opset, dynamo=False, verbose=False)
    except Exception as error:  # torch.export and onnxscript raise many types; all mean the same here
        raise ExportError(f'torch.onnx.export failed for {type(net).__name__}: {str(error).splitlines()[0]}') from None
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {'scale': f'{scale:g}', 'arch': arch or type(net).__name__,
                                        'precision': precision, 'opset': str(opset)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def verify_onnx(path: str | Path, reference, inputs: Sequence[torch.Tensor], precision: str = 'fp32') -> float:
    """Largest absolute difference between onnxruntime and ``reference`` over ``inputs``, outputs clipped to [0, 1].

    Args:
        path: The exported model.
        reference: PyTorch in fp32: a network, or any callable mapping an LR batch to its SR batch.
        inputs: LR batches (fp32, in [0, 1]); they are cast to ``precision`` for onnxruntime.
        precision: The exported model's input type.
    """
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime raises its own exception types, one per failure
        reason = str(error).splitlines()[0]
        raise ExportError(f'onnxruntime cannot run the {precision} graph ({reason}); export fp32 or fp16 '
                          'instead') from None
    worst = 0.0
    for lq in inputs:
        with torch.inference_mode():
            expected = torch.as_tensor(reference(lq)).float().clamp(0, 1).numpy()
        try:
            (result, ) = session.run(['sr'], {'lq': lq.to(PRECISIONS[precision]).numpy()})
        except (TypeError, RuntimeError) as error:  # numpy has no bfloat16, for one
            raise ExportError(f'onnxruntime cannot be fed a {precision} input here: {error}') from None
        result = result.astype(np.float32)
        if result.shape != expected.shape:
            raise ExportError(f'for a {tuple(lq.shape[-2:])} input ONNX gives shape {result.shape}, '
                              f'PyTorch {expected.shape}')
        worst = max(worst, float(np.abs(np.clip(result, 0, 1) - expected).max()))
    return worst


def parity_inputs(image: str | None, sample_size: tuple[int, int], dynamic: bool, channels: int = 3,
                  seed: int = 0) -> list[torch.Tensor]:
    """The LR batches parity is checked on: the user's image (RGB in [0, 1], or its gray level for a one-channel
    network) or a generated smooth one of ``sample_size``, and for a dynamic graph a generated one of another size
    (odd sides, both changed)."""
    generator = torch.Generator().manual_seed(seed)

    def generated(height: int, width: int) -> torch.Tensor:
        coarse = torch.rand(1, channels, height // 4 + 2, width // 4 + 2, generator=generator)
        return torch.nn.functional.interpolate(coarse, size=(height, width), mode='bicubic').clamp(0, 1)

    if image is not None:
        img = read_image(image)
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


def _sample_side(text: str) -> int:
    """argparse type: a side of the traced input, at least the smallest size the dynamic axes allow."""
    value = int(text)
    if value < MIN_DYNAMIC_SIZE:
        raise argparse.ArgumentTypeError(f'{text} is smaller than {MIN_DYNAMIC_SIZE}')
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(prog='oisr export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR option file; its network_g and path.pretrain_network_g')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument('--output', required=True, type=Path, help='the .onnx file to write')
    parser.add_argument('--precision', choices=tuple(PRECISIONS), default='fp32',
                        help='type of the weights, input and output (default: fp32)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default: {DEFAULT_OPSET})')
    parser.add_argument('--scale', type=float, help='NODE-SR: the one scale to export (e.g. 2.5)')
    parser.add_argument('--sample-size', type=_sample_side, nargs=2, default=[64, 64], metavar=('H', 'W'),
                        help='LR size of the traced and generated inputs; NODE-SR\'s fixed LR size (default: 64 64)')
    parser.add_argument('--parity-image', help='image to check parity on (default: a generated one)')
    parser.add_argument('--tolerance', type=float, help='largest accepted difference from PyTorch fp32, images in '
                        '[0, 1] (default: 1e-4 for fp32, 4e-3 for fp16 and bf16)')
    parser.add_argument('--experiment', type=Path, help='BasicSR experiment folder of the training run, for the '
                        'model card (default: the one holding the weights, if they are in models/ of one)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export, check parity and write the model card; returns the exit status."""
    args = parse_args(argv)
    tolerance = args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE[args.precision]
    try:
        check_dependencies()
        opt = load_option_file(args.opt)
        channels = opt['network_g'].get('num_in_ch', 3)
        inputs = parity_inputs(args.parity_image, tuple(args.sample_size), not serves_any_scale(opt), channels)
        plan = plan_export(opt, args.weights, args.scale, tuple(inputs[0].shape[-2:]))
        output = args.output
        output.parent.mkdir(parents=True, exist_ok=True)
        with _temporary_file_beside(output) as staged:
            export_onnx(plan.module, staged, plan.scale, opt['network_g']['type'], args.opset,
                        tuple(inputs[0].shape[-2:]), args.precision, plan.dynamic, channels)
            difference = verify_onnx(staged, plan.reference, inputs, args.precision)
            sizes = ', '.join('x'.join(map(str, lq.shape[-2:])) for lq in inputs)
            source = args.parity_image or 'a generated image'
            print(f'parity, onnxruntime {args.precision} vs PyTorch fp32 on {source} ({sizes} LR): '
                  f'max abs difference {difference:.2e} (tolerance {tolerance:g})')
            if not difference <= tolerance:
                raise ExportError(f'onnxruntime and PyTorch differ by {difference:.2e} > {tolerance:g}; nothing '
                                  'was written')
            os.replace(staged, output)
        axes = 'dynamic batch, height and width' if plan.dynamic else \
            f'fixed {inputs[0].shape[-2]}x{inputs[0].shape[-1]} LR input, batch 1'
        print(f'wrote {output} (x{plan.scale:g}, {args.precision}, opset {args.opset}, {axes})')
        weights = args.weights or (opt.get('path') or {}).get('pretrain_network_g')
        experiment = args.experiment or experiment_dir_of(weights)
        extra = {'onnx': {'opset': args.opset, 'precision': args.precision, 'dynamicAxes': plan.dynamic,
                          'input': 'lq', 'output': 'sr', 'parityMaxAbsDifference': difference}, **plan.card}
        card = build_model_card(opt['network_g'], plan.scale, output, experiment, plan.complexity, extra)
        print(f'wrote {write_model_card(card, output)}')
    except (UserError, ExportError, FileNotFoundError) as error:
        return error_status(error)
    return 0


if __name__ == '__main__':
    sys.exit(main())
