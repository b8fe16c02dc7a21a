"""Export the generator of an option file to ONNX, with dynamic batch size, height and width.

    python scripts/export_onnx.py -opt options/test_OISR_RK3_x4.yml [--weights net_g.pth] --output oisr_rk3_x4.onnx

The graph has one input ``lq`` (``N x 3 x H x W`` float32 RGB in [0, 1]) and one output ``sr``
(``N x 3 x sH x sW``, not clipped); the scale and the architecture are stored in the model's
metadata (``scale``, ``arch``). Export uses torch's ``torch.export``-based exporter (needs
``onnx`` and ``onnxscript``: ``pip install -e .[export]``). With ``--verify`` (needs
``onnxruntime``) the ONNX model is run at two input sizes and compared with PyTorch. Errors are
printed as ``error: <message>`` with exit status 2.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch and registers the package's archs)

# isort: split
# BasicSR 1.4.2 only imports after the patches above, so this block must stay below them.
import torch
from torch import nn

from oisr_basicsr.options import OptionError
from oisr_basicsr.utils.loading import CheckpointError, build_network_from_options, load_option_file, option_scale

DEFAULT_OPSET = 18
MIN_OPSET = 17
# torch.export treats a dimension of size 0 or 1 as a constant, so a dynamic one starts at 2.
MIN_DYNAMIC_SIZE = 2


class ExportError(Exception):
    """The network cannot be exported or the export disagrees with PyTorch."""


def export_onnx(net: nn.Module,
                path: str | Path,
                scale: int,
                arch: str = '',
                opset: int = DEFAULT_OPSET,
                sample_size: tuple[int, int] = (64, 64)) -> Path:
    """Export ``net`` (in eval mode, on the CPU) to an ONNX file with dynamic N, H and W.

    Args:
        net: The network; it maps ``N x 3 x H x W`` to ``N x 3 x sH x sW``.
        path: The ``.onnx`` file to write.
        scale: Its upscaling factor, stored as metadata.
        arch: Architecture name, stored as metadata.
        opset: ONNX opset version, at least 17.
        sample_size: LR ``(height, width)`` of the example input that is traced.

    Returns:
        ``path``.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ExportError(f'opset {opset} is too old; use {MIN_OPSET} or later')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.cpu().eval()
    dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim('height', min=MIN_DYNAMIC_SIZE),
            3: torch.export.Dim('width', min=MIN_DYNAMIC_SIZE)}
    sample = torch.rand(1, 3, *sample_size)
    try:
        torch.onnx.export(net, (sample, ), str(path), input_names=['lq'], output_names=['sr'], opset_version=opset,
                          dynamo=True, dynamic_shapes=(dims, ), external_data=False, verbose=False)
    except Exception as error:  # torch.export and onnxscript raise many types; all mean the same here
        raise ExportError(f'torch.onnx.export failed for {type(net).__name__}: {str(error).splitlines()[0]}') from None
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {'scale': str(scale), 'arch': arch or type(net).__name__})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def verify_onnx(path: str | Path, net: nn.Module, sizes: Sequence[tuple[int, int]], seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over random inputs of ``sizes``.

    Args:
        path: The exported model.
        net: The PyTorch network it came from.
        sizes: LR ``(height, width)`` to test.
        seed: Seed of the random inputs.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for height, width in sizes:
        lq = torch.rand(1, 3, height, width, generator=generator)
        with torch.inference_mode():
            expected = net.cpu().eval()(lq).numpy()
        (result, ) = session.run(['sr'], {'lq': lq.numpy()})
        if result.shape != expected.shape:
            raise ExportError(f'for a {height}x{width} input ONNX gives shape {result.shape}, PyTorch {expected.shape}')
        worst = max(worst, float(np.abs(result - expected).max()))
    return worst


def _sample_side(text: str) -> int:
    """argparse type: a side of the traced input, at least the smallest size the dynamic axes allow."""
    value = int(text)
    if value < MIN_DYNAMIC_SIZE:
        raise argparse.ArgumentTypeError(f'{text} is smaller than {MIN_DYNAMIC_SIZE}')
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR option file; its network_g and path.pretrain_network_g')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument('--output', required=True, type=Path, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default: {DEFAULT_OPSET})')
    parser.add_argument('--sample-size', type=_sample_side, nargs=2, default=[64, 64], metavar=('H', 'W'),
                        help='LR size of the traced example input (default: 64 64)')
    parser.add_argument('--verify', action='store_true', help='compare onnxruntime with PyTorch at two input sizes')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest difference --verify accepts, for images in [0, 1] (default: 1e-4)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export (and optionally verify); returns the exit status."""
    args = parse_args(argv)
    try:
        opt = load_option_file(args.opt)
        scale = option_scale(opt)
        net = build_network_from_options(opt, args.weights)
        path = export_onnx(net, args.output, scale, opt['network_g']['type'], args.opset, tuple(args.sample_size))
        print(f'wrote {path} (x{scale}, opset {args.opset}, dynamic batch, height and width)')
        if args.verify:
            height, width = args.sample_size
            difference = verify_onnx(path, net, [(height, width), (height + 13, width + 7)])
            print(f'onnxruntime vs PyTorch: max abs difference {difference:.2e}')
            if not difference <= args.tolerance:
                raise ExportError(f'onnxruntime and PyTorch differ by {difference:.2e} > {args.tolerance:g}')
    except (OptionError, CheckpointError, ExportError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
