"""The upsamplers inference runs: a network (tiled or whole) at its scale, or NODE-SR at any scale."""

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InferenceError
from ..images import ImageHeader, check_image, decode_image
from ..memory import traced_forward_peak
from ..model_capabilities import serves_any_scale
from ..models.nodesr import NODESR
from ..precisions import PRECISIONS
from .loading import build_network_from_options, option_scale
from .tiling import tiled_forward


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

    def traced_peak(self, height: int, width: int) -> int | None:
        """Peak bytes the network's part of a call on a ``height x width`` image holds on :attr:`device`, traced on
        fake tensors (:func:`~oisr_basicsr.memory.traced_forward_peak`); with tiles, that of the largest window (on
        the CPU with the output they are assembled into). None where it cannot be traced."""
        if self.tile is None:
            return traced_forward_peak(lambda: self._forward, (1, 3, height, width), self.device)
        if self.device.type == 'cpu':
            return traced_forward_peak(lambda: partial(tiled_forward, self._forward, scale=self.scale, tile=self.tile,
                                                       overlap=self.tile_overlap), (1, 3, height, width))
        # On a GPU only the windows are there; they are assembled on the host.
        window = (1, 3, min(self.tile, height), min(self.tile, width))
        return traced_forward_peak(lambda: self._forward, window, self.device)

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
                    keep_states: bool = False) -> 'Upsampler | NODESRUpsampler':
    """The model of an option dict, ready for :func:`super_resolve_image`.

    Args:
        opt: Options with ``network_g`` (see :func:`~oisr_basicsr.inference.loading.load_option_file`).
        weights: Checkpoint replacing ``path.pretrain_network_g``.
        device: ``cpu``, ``cuda``, ``cuda:N``; ``None`` picks the GPU when there is one.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        tile: Window size in LR pixels, or ``None`` for whole images.
        tile_overlap: Context in LR pixels per inner window side.
        scale: Requested upscaling factor (see :func:`upsampling_scale`).
        keep_states: NODE-SR only: keep the intermediate states of each image (see :class:`NODESRUpsampler`).

    Returns:
        A callable mapping an ``N x 3 x H x W`` tensor in [0, 1] to the upscaled one.
    """
    device = resolve_device(device)
    scale = upsampling_scale(opt, scale, tile)
    if opt['network_g'].get('num_in_ch', 3) != 3 or opt['network_g'].get('num_out_ch', 3) != 3:
        raise InferenceError('inference supports networks with 3 input and 3 output channels (RGB)')
    net = build_network_from_options(opt, weights)
    return network_upsampler(opt, net, scale, device, precision, tile, tile_overlap, keep_states)


def upsampling_scale(opt: dict, scale: float | None = None, tile: int | None = None) -> float:
    """The factor the model of an option dict upscales by when ``scale`` is asked for, checked before any weights
    are loaded.

    Args:
        opt: Options with ``network_g``.
        scale: Requested factor: a fixed-scale network accepts only its own (or ``None``); a model that serves
            any scale (NODE-SR, see :func:`~oisr_basicsr.model_capabilities.serves_any_scale`) needs one and takes
            any factor >= 1.
        tile: Requested window size; a model that serves any scale takes none.

    Raises:
        InferenceError: The model cannot run as asked.
    """
    if serves_any_scale(opt):
        if scale is None or not scale >= 1:
            raise InferenceError(f'NODE-SR super-resolves by any factor >= 1, given with --scale (e.g. 2.7); '
                                 f'got {scale}')
        if tile is not None:
            # A non-integer scale puts tile borders between output pixels, so cropped tiles would not line up.
            raise InferenceError('--tile is not supported for NODE-SR models')
        return scale
    net_scale = option_scale(opt)
    if scale is not None and scale != net_scale:
        raise InferenceError(f'--scale {scale}: network_g ({opt["network_g"]["type"]}) upscales by {net_scale} only')
    return net_scale


def network_upsampler(opt: dict,
                      net: nn.Module,
                      scale: float,
                      device: torch.device,
                      precision: str = 'fp32',
                      tile: int | None = None,
                      tile_overlap: int = 16,
                      keep_states: bool = False) -> 'Upsampler | NODESRUpsampler':
    """The upsampler that runs the built ``network_g`` of an option dict: the network itself, or NODE-SR's
    integration with it as the dynamics for a model that serves any scale.

    Args:
        opt: The options ``net`` was built from.
        net: Their ``network_g``, with its weights; moved to ``device``.
        scale: From :func:`upsampling_scale`.
        device: Where it runs.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        tile: Window size in LR pixels, or ``None`` for whole images (fixed-scale networks).
        tile_overlap: Context in LR pixels per inner window side.
        keep_states: NODE-SR only: keep the intermediate states of each image.
    """
    if serves_any_scale(opt):
        try:
            nodesr = NODESR.from_options(net.to(device).eval(), opt, scale)
        except ValueError as error:  # the ode block, naming its key
            raise InferenceError(str(error)) from None
        return NODESRUpsampler(nodesr, device, precision, keep_states)
    return Upsampler(net, scale, device, precision, tile, tile_overlap,
                     pad_multiple=opt['network_g'].get('window_size', 1))


@dataclass
class NODESRUpsampler:
    """NODE-SR at one real scale: :class:`~oisr_basicsr.models.nodesr.NODESR` on one device.

    Calling it maps an ``N x 3 x h x w`` RGB tensor in [0, 1] to the float32
    ``N x 3 x floor(h t) x floor(w t)`` result on the CPU, clamped to [0, 1].

    Args:
        nodesr: The module, its dynamics network in eval mode on ``device`` and its scale ``t >= 1`` fixed.
        device: Where it runs.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        keep_states: Keep the intermediate states ``I(t_i)`` of the last call in :attr:`states`, as
            ``(t_i, 1 x 3 x H x W tensor)`` pairs from ``t0`` down to 1 (the papers' progressive restoration).
    """

    nodesr: NODESR
    device: torch.device
    precision: str = 'fp32'
    keep_states: bool = False
    states: list[tuple[float, torch.Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        autocast_context(self.device, self.precision)  # fail now, not at the first image

    @property
    def scale(self) -> float:
        """The upscaling factor ``t``."""
        return self.nodesr.scale

    def traced_peak(self, height: int, width: int) -> None:
        """None: the solver's work is not traced (an adaptive solver chooses its steps from the values, which fake
        tensors do not have); only the result is counted."""
        return None

    @torch.inference_mode()
    def __call__(self, lq: torch.Tensor, progress: bool = False) -> torch.Tensor:
        # ``progress`` is accepted for the Upsampler interface; one solve has no tiles to count.
        with autocast_context(self.device, self.precision):
            solution = self.nodesr.super_resolve(lq.to(self.device), return_states=self.keep_states)
        if self.keep_states:
            self.states = [(float(t), state.float().cpu().clamp(0, 1))
                           for t, state in zip(solution.times, solution.states, strict=True)]
        return solution.final.float().cpu().clamp_(0, 1)


def check_input_image(path: str | Path, scale: float) -> ImageHeader:
    """An image to super-resolve, checked by the image gate (:func:`~oisr_basicsr.images.check_image`) for
    ``scale``: a side shorter than it is refused.

    Raises:
        ImageFileError: The file cannot be read, is truncated or corrupt, or is smaller than the scale.
    """
    return check_image(path, math.ceil(scale), f'scale {scale:g}')


def read_input_image(header: ImageHeader) -> np.ndarray:
    """The pixels of an image that :func:`check_input_image` accepted: HxW (grayscale, also a gray image with
    alpha), HxWx3 (BGR) or HxWx4 (BGRA), 8 or 16 bits.

    Raises:
        ImageFileError: OpenCV cannot decode it.
        InferenceError: Its pixel type or channel count is not supported.
    """
    img = decode_image(header)
    if img.dtype not in (np.uint8, np.uint16):
        raise InferenceError(f'{header.path} has {img.dtype} pixels; only 8- and 16-bit images are supported')
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise InferenceError(f'{header.path} has {img.shape[2]} channels; only 1, 3 and 4 are supported')
    return img


def super_resolve_image(img: np.ndarray, upsampler: Callable[..., torch.Tensor], progress: bool = False) -> np.ndarray:
    """Super-resolve one image as :func:`read_input_image` returns it, keeping its layout and bit depth.

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


