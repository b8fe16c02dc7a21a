"""Super-resolve your own images (no ground truth needed) with any trained model.

    oisr infer -opt options/test_OISR_RK3_x4.yml --input photos/ --output sr/ \\
        [--weights net_g.pth] [--device cuda] [--tile 256 --tile-overlap 16] [--precision fp16]

The network is ``network_g`` of the option file (any registered architecture: OISR, EDSR, RCAN,
SwinIR, ...) with the weights of ``path.pretrain_network_g`` or ``--weights`` (a BasicSR checkpoint
with ``params`` / ``params_ema``, or a bare state dict; ``.pth`` or ``.safetensors``). Every image in
``--input`` (a file or a folder of PNG, JPEG, BMP, TIFF or WebP files) is written to ``--output`` as
``<stem>.png``:

- colour images are super-resolved as RGB and saved with the input's bit depth (8 or 16 bits);
- grayscale images are super-resolved as three equal channels and saved as grayscale;
- the alpha channel of an RGBA image is upscaled with bicubic interpolation and kept.

``--tile`` bounds memory by running the network on windows of that many LR pixels; each window
carries ``--tile-overlap`` pixels of context that are cropped away, so with an overlap at least the
network's receptive-field radius the output equals the untiled one. ``--precision fp16`` / ``bf16``
runs the network under autocast (fp16 needs a GPU; bf16 also works on the CPU). Before the first image, the
largest input is refused, with the estimated size, if its result cannot fit in memory.

A NODE-SR option file (``model_type: NODESRModel``) super-resolves by any factor, given with
``--scale`` (e.g. ``--scale 2.7``; the output is ``floor(h t) x floor(w t)``), through
:class:`~oisr_basicsr.models.nodesr.NODESR` with the file's ODE solver; tiling is not available for it.
"""

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..checkpoints.loading import load_option_file
from ..data.preparation import list_image_files
from ..errors import InferenceError, UnsafeOutputError, UserError, error_status
from ..inference.upsampler import IMAGE_EXTENSIONS, Upsampler, build_upsampler, read_image, super_resolve_image
from ..memory import check_result_fits
from ..model_capabilities import any_scale_models, serves_any_scale
from ..options.blocks import PRECISIONS
from ..outputs import check_output_path, write_image


def list_inputs(path: str | Path) -> list[Path]:
    """The image files of ``path``: the file itself, or a folder's images sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    try:
        return list_image_files(path, 'input', IMAGE_EXTENSIONS)
    except (OSError, ValueError) as error:
        raise InferenceError(str(error)) from None


def output_paths(inputs: Sequence[Path], output_dir: str | Path) -> list[Path]:
    """``<output_dir>/<stem>.png`` for each input, refusing clashes, inputs that would be overwritten and
    outputs that are links or not regular files."""
    outputs = [Path(output_dir) / f'{path.stem}.png' for path in inputs]
    by_output: dict[Path, Path] = {}
    for path, output in zip(inputs, outputs, strict=True):
        if output in by_output:
            raise InferenceError(f'{by_output[output]} and {path} would both be written to {output}')
        by_output[output] = path
    resolved_inputs = {path.resolve() for path in inputs}
    for output in outputs:
        if output.resolve() in resolved_inputs:
            raise InferenceError(f'{output} is an input image; choose another --output folder')
        try:
            check_output_path(output)  # all refused before the first image is computed
        except UnsafeOutputError as error:
            raise InferenceError(str(error)) from None
    return outputs


def check_results_fit(paths: Sequence[Path], upsampler: Callable[..., torch.Tensor]) -> None:
    """Refuse, before any image is processed, inputs whose largest result cannot be held in memory.

    The image with the most pixels (from the headers) is checked with
    :func:`~oisr_basicsr.memory.check_result_fits`: its float32 RGB result and 8-bit copy in host memory, and the
    network's traced peak (of one tile with ``--tile``; not traced for NODE-SR) on the upsampler's device.
    """
    sizes = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes[path] = image.size
        except (OSError, Image.DecompressionBombError):
            continue  # read_image names the file when it comes to it
    if not sizes:
        return
    path, (width, height) = max(sizes.items(), key=lambda item: item[1][0] * item[1][1])
    scale = upsampler.scale
    advice = ('use --tile (it bounds the network\'s part, not the result) or a smaller image'
              if isinstance(upsampler, Upsampler) else 'use a smaller --scale or a smaller image')
    check_result_fits(str(path), scale, (math.floor(height * scale), math.floor(width * scale)), 3, upsampler.device,
                      upsampler.traced_peak(height, width), advice)


def infer(inputs: str | Path,
          output_dir: str | Path,
          upsampler: Callable[..., torch.Tensor],
          progress: bool = True) -> list[Path]:
    """Super-resolve a file or folder into ``output_dir`` (created if needed) as PNGs.

    Args:
        inputs: An image file or a folder of images.
        output_dir: Folder for the ``<stem>.png`` results.
        upsampler: From :func:`build_upsampler`.
        progress: Show tqdm bars over the images (and the tiles).

    Returns:
        The files written, in input order.
    """
    paths = list_inputs(inputs)
    outputs = output_paths(paths, output_dir)
    check_results_fit(paths, upsampler)
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InferenceError(f'cannot create the output folder {output_dir}: {error}') from None
    for path, output in tqdm(list(zip(paths, outputs, strict=True)), desc='images', unit='image',
                             disable=not progress):
        sr = super_resolve_image(read_image(path), upsampler, progress=progress)
        _write_image(output, sr)
        if getattr(upsampler, 'keep_states', False):
            _write_states(upsampler.states, Path(output_dir) / 'states' / path.stem)
    return outputs


def _write_states(states: list[tuple[float, torch.Tensor]], folder: Path) -> None:
    """Save ``I(t_i)`` as ``t<t_i>.png`` (e.g. ``t2.700.png`` ... ``t1.000.png``), 8-bit RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, state in states:
        rgb = np.round(state[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        _write_image(folder / f't{t:.3f}.png', rgb[..., ::-1])


def _write_image(path: Path, img: np.ndarray) -> None:
    try:
        write_image(path, img)
    except OSError as error:
        raise InferenceError(f'cannot write {path}: {error}') from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} is not a positive integer')
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is negative')
    return value


def _positive_float(text: str) -> int | float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text} is not a positive number')
    return int(value) if value.is_integer() else value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(prog='oisr infer', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR option file; its network_g and path.pretrain_network_g')
    parser.add_argument('-i', '--input', required=True, help='image file or folder of images')
    parser.add_argument('-o', '--output', required=True, help='folder for the <stem>.png results')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--precision', choices=tuple(PRECISIONS), default='fp32',
                        help='fp16 / bf16 run under autocast; fp16 needs a GPU (default: fp32)')
    parser.add_argument('--tile', type=positive_int, help='window size in LR pixels (default: whole images)')
    parser.add_argument('--tile-overlap', type=non_negative_int, default=16,
                        help='context in LR pixels cropped from each inner window side (default: 16)')
    parser.add_argument('--scale', type=_positive_float, help='upscaling factor: any factor >= 1 for a NODE-SR model '
                        '(e.g. 2.7); a fixed-scale network accepts only its own')
    parser.add_argument('--save-states', action='store_true',
                        help='NODE-SR: also save the intermediate states I(t_i) to <output>/states/<stem>/')
    parser.add_argument('--no-progress', dest='progress', action='store_false', help='hide the progress bars')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run inference from the command line; returns the exit status (2 for bad inputs or options)."""
    args = parse_args(argv)
    try:
        opt = load_option_file(args.opt)
        if args.save_states and not serves_any_scale(opt):
            raise InferenceError(f'--save-states needs a NODE-SR option file (model_type: '
                                 f'{" or ".join(any_scale_models())})')
        upsampler = build_upsampler(opt, args.weights, args.device, args.precision, args.tile, args.tile_overlap,
                                    args.scale, keep_states=args.save_states)
        outputs = infer(args.input, args.output, upsampler, progress=args.progress)
    except UserError as error:
        return error_status(error)
    print(f'wrote {len(outputs)} image(s) to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
