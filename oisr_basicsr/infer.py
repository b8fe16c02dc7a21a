"""Super-resolve your own images (no ground truth needed) with any trained model.

    python -m oisr_basicsr.infer -opt options/test_OISR_RK3_x4.yml --input photos/ --output sr/ \\
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
runs the network under autocast (fp16 needs a GPU; bf16 also works on the CPU).

A NODE-SR option file (``model_type: NODESRModel``) super-resolves by any factor, given with
``--scale`` (e.g. ``--scale 2.7``; the output is ``floor(h t) x floor(w t)``), through
``NODESRModel.super_resolve`` with the file's ODE solver; tiling is not available for it.
"""

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from .models.accelerated_sr_model import PRECISIONS
from .models.nodesr_model import NODESRModel
from .options import OptionError
from .utils.file_output import UnsafeOutputError, check_output_path, write_image
from .utils.loading import CheckpointError, build_network_from_options, load_option_file, option_scale
from .utils.memory import available_host_memory
from .utils.tiling import tiled_forward

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
RESULT_BYTES_PER_PIXEL = 3 * 4 + 3
"""The float32 RGB result and the 8-bit image written from it."""


class InferenceError(ValueError):
    """An input, output or setting that inference cannot work with; the message names it."""


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a device (``None``: the first GPU if there is one, else the CPU), checked to exist."""
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InferenceError(f'--device {name!r} is not a device; use cpu, cuda or cuda:N') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InferenceError(f'--device {name}: CUDA is not available on this machine; use --device cpu')
    if device.type not in ('cpu', 'cuda'):
        raise InferenceError(f'--device {name}: only cpu and cuda devices are supported')
    return device


def autocast_context(device: torch.device, precision: str):
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision not in PRECISIONS:
        raise InferenceError(f'precision {precision!r} is not one of {", ".join(PRECISIONS)}')
    if PRECISIONS[precision] is None:
        return nullcontext()
    if precision == 'fp16' and device.type != 'cuda':
        raise InferenceError('--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32')
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


@dataclass
class Upsampler:
    """A network with an integer scale, run on one device, optionally tile by tile.

    Calling it maps an ``N x 3 x H x W`` RGB tensor in [0, 1] (on any device) to the float32
    ``N x 3 x sH x sW`` result on the CPU, clamped to [0, 1].

    Args:
        net: The network, in eval mode.
        scale: Its upscaling factor.
        device: Where the network runs.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        tile: Window size in LR pixels; ``None`` runs whole images.
        tile_overlap: Context in LR pixels cropped from each inner window side.
        pad_multiple: Input sides are reflect-padded up to a multiple of this (SwinIR's window size)
            and the output cropped back.
    """

    net: nn.Module
    scale: int
    device: torch.device
    precision: str = 'fp32'
    tile: int | None = None
    tile_overlap: int = 16
    pad_multiple: int = 1

    def __post_init__(self) -> None:
        self.net = self.net.to(self.device).eval()
        autocast_context(self.device, self.precision)  # fail now, not at the first image
        if self.tile is not None and self.tile <= 2 * self.tile_overlap:
            raise InferenceError(f'--tile {self.tile} must be larger than twice --tile-overlap {self.tile_overlap}')
        if self.tile_overlap < 0:
            raise InferenceError(f'--tile-overlap must be non-negative, got {self.tile_overlap}')

    def _forward(self, lq: torch.Tensor) -> torch.Tensor:
        height, width = lq.shape[-2:]
        pad_h, pad_w = -height % self.pad_multiple, -width % self.pad_multiple
        if pad_h or pad_w:
            lq = F.pad(lq, (0, pad_w, 0, pad_h), mode='reflect')
        with autocast_context(self.device, self.precision):
            output = self.net(lq)
        return output[..., :height * self.scale, :width * self.scale].float()

    @torch.inference_mode()
    def __call__(self, lq: torch.Tensor, progress: bool = False) -> torch.Tensor:
        if self.tile is None:
            output = self._forward(lq.to(self.device)).cpu()
        else:
            output = tiled_forward(self._forward, lq.cpu(), self.scale, self.tile, self.tile_overlap,
                                   device=self.device, progress=progress)
        return output.clamp_(0, 1)


def build_upsampler(opt: dict,
                    weights: str | Path | None = None,
                    device: str | None = None,
                    precision: str = 'fp32',
                    tile: int | None = None,
                    tile_overlap: int = 16,
                    scale: float | None = None,
                    keep_states: bool = False) -> Callable[..., torch.Tensor]:
    """The model of an option dict, ready for :func:`super_resolve_image`.

    Args:
        opt: Options with ``network_g`` (see :func:`~oisr_basicsr.utils.loading.load_option_file`).
        weights: Checkpoint replacing ``path.pretrain_network_g``.
        device: ``cpu``, ``cuda``, ``cuda:N``; ``None`` picks the GPU when there is one.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        tile: Window size in LR pixels, or ``None`` for whole images.
        tile_overlap: Context in LR pixels per inner window side.
        scale: Requested upscaling factor; a fixed-scale network accepts only its own (or ``None``), a
            NODE-SR model (``model_type: NODESRModel``) needs one and takes any factor >= 1.
        keep_states: NODE-SR only: keep the intermediate states of each image (see :class:`NODESRUpsampler`).

    Returns:
        A callable mapping an ``N x 3 x H x W`` tensor in [0, 1] to the upscaled one.
    """
    device = resolve_device(device)
    if opt.get('model_type') == 'NODESRModel':
        return _build_nodesr_upsampler(opt, weights, device, precision, tile, scale, keep_states)
    net_scale = option_scale(opt)
    if scale is not None and scale != net_scale:
        raise InferenceError(f'--scale {scale}: network_g ({opt["network_g"]["type"]}) upscales by {net_scale} only')
    if opt['network_g'].get('num_in_ch', 3) != 3 or opt['network_g'].get('num_out_ch', 3) != 3:
        raise InferenceError('inference supports networks with 3 input and 3 output channels (RGB)')
    net = build_network_from_options(opt, weights)
    return Upsampler(net, net_scale, device, precision, tile, tile_overlap,
                     pad_multiple=opt['network_g'].get('window_size', 1))


@dataclass
class NODESRUpsampler:
    """NODE-SR at any scale: :meth:`~oisr_basicsr.models.nodesr_model.NODESRModel.super_resolve`.

    Calling it maps an ``N x 3 x h x w`` RGB tensor in [0, 1] to the float32
    ``N x 3 x floor(h t) x floor(w t)`` result on the CPU, clamped to [0, 1].

    Args:
        model: The NODE-SR model, with its weights loaded.
        scale: The factor ``t >= 1``.
        device: The model's device.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        keep_states: Keep the intermediate states ``I(t_i)`` of the last call in :attr:`states`, as
            ``(t_i, 1 x 3 x H x W tensor)`` pairs from ``t0`` down to 1 (the papers' progressive restoration).
    """

    model: NODESRModel
    scale: float
    device: torch.device
    precision: str = 'fp32'
    keep_states: bool = False
    states: list[tuple[float, torch.Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        autocast_context(self.device, self.precision)  # fail now, not at the first image

    @torch.inference_mode()
    def __call__(self, lq: torch.Tensor, progress: bool = False) -> torch.Tensor:
        # ``progress`` is accepted for the Upsampler interface; one solve has no tiles to count.
        with autocast_context(self.device, self.precision):
            solution = self.model.super_resolve(lq.to(self.device), self.scale, return_states=self.keep_states)
        if self.keep_states:
            self.states = [(float(t), state.float().cpu().clamp(0, 1))
                           for t, state in zip(solution.times, solution.states, strict=True)]
        return solution.final.float().cpu().clamp_(0, 1)


def _build_nodesr_upsampler(opt: dict, weights: str | Path | None, device: torch.device, precision: str,
                            tile: int | None, scale: float | None, keep_states: bool) -> NODESRUpsampler:
    if scale is None or scale < 1:
        raise InferenceError(f'NODE-SR super-resolves by any factor >= 1, given with --scale (e.g. 2.7); got {scale}')
    if tile is not None:
        # A non-integer scale puts tile borders between output pixels, so cropped tiles would not line up.
        raise InferenceError('--tile is not supported for NODE-SR models')
    if device.type == 'cuda' and device.index not in (None, torch.cuda.current_device()):
        raise InferenceError(f'--device {device}: NODE-SR runs on the current CUDA device; select it with '
                             f'CUDA_VISIBLE_DEVICES and pass --device cuda')
    net = build_network_from_options(opt, weights)
    # The model loads no checkpoint itself (BasicSR's loader unpickles without weights_only); it gets ``net``.
    model_opt = {**opt, 'is_train': False, 'dist': False, 'num_gpu': int(device.type == 'cuda'),
                 'path': {**(opt.get('path') or {}), 'pretrain_network_g': None}}
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.setLevel(logging.WARNING)  # SRModel logs the whole network structure at INFO
    try:
        model = NODESRModel(model_opt)
    finally:
        logger.setLevel(level)
    model.net_g = net.to(model.device).eval()
    return NODESRUpsampler(model, float(scale), model.device, precision, keep_states)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as HxW (grayscale), HxWx3 (BGR) or HxWx4 (BGRA), 8 or 16 bits.

    Raises:
        InferenceError: The file cannot be read, or its pixel type or channel count is not supported.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InferenceError(f'cannot read image {path} (missing, corrupt or not an image)')
    if img.dtype not in (np.uint8, np.uint16):
        raise InferenceError(f'{path} has {img.dtype} pixels; only 8- and 16-bit images are supported')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise InferenceError(f'{path} has {img.shape[2]} channels; only 1, 3 and 4 are supported')
    return img


def super_resolve_image(img: np.ndarray, upsampler: Callable[..., torch.Tensor], progress: bool = False) -> np.ndarray:
    """Super-resolve one image as :func:`read_image` returns it, keeping its layout and bit depth.

    Args:
        img: HxW, HxWx3 (BGR) or HxWx4 (BGRA), ``uint8`` or ``uint16``.
        upsampler: From :func:`build_upsampler`.
        progress: Passed to the upsampler (a bar over the tiles).

    Returns:
        The SR image: grayscale stays grayscale (the network sees three equal channels), the
        alpha channel is upscaled with bicubic interpolation.
    """
    max_value = float(np.iinfo(img.dtype).max)
    alpha = img[..., 3] if img.ndim == 3 and img.shape[2] == 4 else None
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img[..., :3]
    rgb = np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / max_value
    lq = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    sr = upsampler(lq, progress=progress)[0].permute(1, 2, 0).numpy()
    out = np.round(sr[..., ::-1] * max_value).astype(img.dtype)
    if img.ndim == 2:
        return cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    if alpha is not None:
        alpha = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
        out = np.dstack([out, alpha])
    return out


def list_inputs(path: str | Path) -> list[Path]:
    """The image files of ``path``: the file itself, or a folder's images sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InferenceError(f'input not found: {path}')
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InferenceError(f'{path} holds no images ({" ".join(IMAGE_EXTENSIONS)})')
    return files


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


def check_results_fit(paths: Sequence[Path], scale: float) -> None:
    """Refuse, before any image is processed, an input whose result at ``scale`` cannot be held in memory.

    The bound is a lower one: the float32 RGB result and its 8-bit copy (15 bytes per output pixel), from the
    image headers, against the memory the system has available.
    """
    available = available_host_memory()
    if available is None:
        return
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, Image.DecompressionBombError):
            continue  # read_image names the file when it comes to it
        out_height, out_width = math.floor(height * scale), math.floor(width * scale)
        needed = out_height * out_width * RESULT_BYTES_PER_PIXEL
        if needed > available:
            raise InferenceError(f'{path}: at scale {scale:g} the result is {out_width}x{out_height} pixels, at '
                                 f'least {_size(needed)} of memory, more than the {_size(available)} available; use '
                                 'a smaller --scale or a smaller image')


def _size(num_bytes: float) -> str:
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if num_bytes < 1024:
            return f'{num_bytes:.0f} {unit}' if unit == 'bytes' else f'{num_bytes:.1f} {unit}'
        num_bytes /= 1024
    return f'{num_bytes:.1f} TiB'


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
    check_results_fit(paths, upsampler.scale)
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
    parser = argparse.ArgumentParser(prog='python -m oisr_basicsr.infer', description=__doc__,
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
        if args.save_states and opt.get('model_type') != 'NODESRModel':
            raise InferenceError('--save-states needs a NODE-SR option file (model_type: NODESRModel)')
        upsampler = build_upsampler(opt, args.weights, args.device, args.precision, args.tile, args.tile_overlap,
                                    args.scale, keep_states=args.save_states)
        outputs = infer(args.input, args.output, upsampler, progress=args.progress)
    except (OptionError, CheckpointError, InferenceError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {len(outputs)} image(s) to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
