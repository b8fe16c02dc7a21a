"""Super-resolve your own images (no ground truth needed) with any trained model: the work of ``oisr infer``, whose
command line and help are :mod:`oisr_cli.commands.infer`."""

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.preparation import list_image_files
from ..errors import InferenceError, UserError, error_status
from ..images import IMAGE_SUFFIXES, read_image_header
from ..inference.loading import load_option_file, weights_path
from ..inference.upsampler import (
    Upsampler,
    build_upsampler,
    check_input_image,
    read_input_image,
    super_resolve_image,
)
from ..memory import check_result_fits
from ..model_capabilities import any_scale_models, serves_any_scale
from ..outputs import DEFAULT_RULES, OutputRules, check_output_folder, check_output_path, output_in, write_image


def list_inputs(path: str | Path) -> list[Path]:
    """The image files of ``path``: the file itself, or a folder's images sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    try:
        return list_image_files(path, 'input', IMAGE_SUFFIXES)
    except (OSError, ValueError) as error:
        raise InferenceError(str(error)) from None


def output_paths(inputs: Sequence[Path], output_dir: str | Path, rules: OutputRules = DEFAULT_RULES) -> list[Path]:
    """``<output_dir>/<stem>.png`` for each input, all checked before the first image is computed: refusing an
    ``output_dir`` that is not a folder, clashes, outputs that are an input of ``rules`` (the images among them)
    and outputs that are links or not regular files."""
    check_output_folder(output_dir, rules)
    outputs = [output_in(output_dir, f'{path.stem}.png') for path in inputs]
    by_output: dict[Path, Path] = {}
    for path, output in zip(inputs, outputs, strict=True):
        if output in by_output:
            raise InferenceError(f'{by_output[output]} and {path} would both be written to {output}')
        by_output[output] = path
        check_output_path(output, rules)
    return outputs


def check_results_fit(paths: Sequence[Path], upsampler: Callable[..., torch.Tensor]) -> None:
    """Refuse, before any image is processed, inputs whose largest result cannot be held in memory.

    The image with the most pixels (from the headers) is checked with
    :func:`~oisr_basicsr.memory.check_result_fits`: its float32 RGB result and 8-bit copy in host memory, and the
    network's traced peak (of one tile with ``--tile``; not traced for NODE-SR) on the upsampler's device.
    """
    # Every header is read, none skipped: a file that is no image is named here, before any work.
    largest = max((read_image_header(path) for path in paths), key=lambda header: header.pixels)
    path, height, width = largest.path, largest.height, largest.width
    scale = upsampler.scale
    advice = ('use --tile (it bounds the network\'s part, not the result) or a smaller image'
              if isinstance(upsampler, Upsampler) else 'use a smaller --scale or a smaller image')
    check_result_fits(str(path), scale, (math.floor(height * scale), math.floor(width * scale)), 3, upsampler.device,
                      upsampler.traced_peak(height, width), advice)


def infer(inputs: str | Path,
          output_dir: str | Path,
          upsampler: Callable[..., torch.Tensor],
          progress: bool = True,
          rules: OutputRules = DEFAULT_RULES) -> list[Path]:
    """Super-resolve a file or folder into ``output_dir`` (created if needed) as PNGs.

    Args:
        inputs: An image file or a folder of images.
        output_dir: Folder for the ``<stem>.png`` results.
        upsampler: From :func:`build_upsampler`.
        progress: Show tqdm bars over the images (and the tiles).
        rules: The run's other inputs (option file, weights), which no output may replace.

    Returns:
        The files written, in input order.
    """
    paths = list_inputs(inputs)
    rules = rules.with_inputs({'an input image': paths})
    outputs = output_paths(paths, output_dir, rules)
    check_results_fit(paths, upsampler)
    # Every image is decoded once before the first result is written: a damaged or too small file among many
    # stops the run with nothing written, not half-way through.
    headers = [check_input_image(path, upsampler.scale) for path in paths]
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InferenceError(f'cannot create the output folder {output_dir}: {error}') from None
    for path, header, output in tqdm(list(zip(paths, headers, outputs, strict=True)), desc='images', unit='image',
                                     disable=not progress):
        sr = super_resolve_image(read_input_image(header), upsampler, progress=progress)
        _write_image(output, sr, rules)
        if getattr(upsampler, 'keep_states', False):
            _write_states(upsampler.states, output_in(output_dir, Path('states') / path.stem), rules)
    return outputs


def _write_states(states: list[tuple[float, torch.Tensor]], folder: Path, rules: OutputRules) -> None:
    """Save ``I(t_i)`` as ``t<t_i>.png`` (e.g. ``t2.700.png`` ... ``t1.000.png``), 8-bit RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, state in states:
        rgb = np.round(state[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        _write_image(folder / f't{t:.3f}.png', rgb[..., ::-1], rules)


def _write_image(path: Path, img: np.ndarray, rules: OutputRules) -> None:
    try:
        write_image(path, img, rules=rules)
    except UserError:
        raise
    except OSError as error:
        raise InferenceError(f'cannot write {path}: {error}') from None


def run(args: argparse.Namespace) -> int:
    """Run ``oisr infer`` (its command line: :mod:`oisr_cli.commands.infer`); returns the exit status (2 for bad
    inputs or options)."""
    try:
        opt = load_option_file(args.opt)
        if args.save_states and not serves_any_scale(opt):
            raise InferenceError(f'--save-states needs a NODE-SR option file (model_type: '
                                 f'{" or ".join(any_scale_models())})')
        rules = OutputRules({'the option file': args.opt, 'the checkpoint': weights_path(opt, args.weights)})
        paths = list_inputs(args.input)
        # Refused before the model is built.
        output_paths(paths, args.output, rules.with_inputs({'an input image': paths}))
        upsampler = build_upsampler(opt, args.weights, args.device, args.precision, args.tile, args.tile_overlap,
                                    args.scale, keep_states=args.save_states)
        outputs = infer(args.input, args.output, upsampler, progress=args.progress, rules=rules)
    except UserError as error:
        return error_status(error)
    print(f'wrote {len(outputs)} image(s) to {args.output}')
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.infer import main  # the command line is the `oisr` command's

    sys.exit(main())
