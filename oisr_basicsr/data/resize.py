"""The package's one resize module: MATLAB-compatible bicubic resizing and the NODE-SR degradation built on it.

BasicSR's benchmarks and DIV2K's official LR images come from MATLAB's ``imresize`` (bicubic with
antialiasing). :func:`imresize` computes the same weights and border handling as MATLAB (and as
:func:`basicsr.utils.matlab_functions.imresize`, which it matches to float precision), but applies them as
two matrix products, ``rows @ image @ cols.T``, so that it runs batched and on any device. The matrices
depend only on the input length, the output length and the scale, and are cached.

On top of it:

- :func:`imresize_uint8` / :func:`imresize_tensor`: 8-bit LR images and batched float resizing.
- :func:`progressive_input`: NODE-SR's ``I(t)``, HR downscaled by ``1/t``, quantised to 8 bits and upscaled by
  ``t`` back to exactly the HR size, pixel-aligned with HR.
- :func:`upscale_lr`: ``I(t0)`` from a real LR image, for evaluation and inference.
"""

import math
from fractions import Fraction
from functools import lru_cache
from numbers import Real

import numpy as np
import torch

# Kernel support of MATLAB's bicubic in input pixels (before antialiasing widens it).
_CUBIC_WIDTH = 4
# Scales are matched to fractions p / q with q up to this (1.1 -> 11/10, 2.345 -> 469/200), see _simple_fraction.
_MAX_DENOMINATOR = 1000

Size = tuple[int, int]


def imresize(img: np.ndarray | torch.Tensor, scale: float, size: Size | None = None) -> np.ndarray | torch.Tensor:
    """MATLAB-style bicubic resize with antialiasing, for numpy images and (batched) torch tensors.

    Matches :func:`basicsr.utils.matlab_functions.imresize` (and MATLAB's ``imresize(img, scale)``) to float
    precision, for any real scale, downscaling and upscaling.

    Args:
        img: numpy ``HxW`` or ``HxWxC``, or torch ``CxHxW`` or ``NxCxHxW`` (any device). Values are resized as they
            are, usually [0, 1].
        scale: Factor applied to both height and width, e.g. ``1 / 4`` for x4 downsampling. It fixes the sampling
            grid (output pixel ``x`` reads input position ``x / scale + (1 - 1 / scale) / 2``, 1-based) and, below
            1, the antialiasing width.
        size: Output ``(height, width)``. By default MATLAB's ``(ceil(h * scale), ceil(w * scale))``. With a
            given size the grid is unchanged, so a smaller size is exactly a top-left crop of the default output.

    Returns:
        The resized image, neither clipped nor rounded, laid out like ``img``. numpy results are float64 for
        float64 input and float32 otherwise; tensors keep a floating dtype (float32 for integer input) and the
        device.
    """
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f'imresize expects a numpy HxW or HxWxC image, got shape {img.shape}')
        dtype = torch.float64 if img.dtype == np.float64 else torch.float32
        planes = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.atleast_3d(img), -1, 0))).to(dtype)
        resized = _resize_planes(planes, scale, size).numpy()
        return resized[0] if img.ndim == 2 else np.moveaxis(resized, 0, -1)
    if isinstance(img, torch.Tensor):
        if img.ndim not in (3, 4):
            raise ValueError(f'imresize expects a torch CxHxW or NxCxHxW tensor, got shape {tuple(img.shape)}')
        return _resize_planes(img, scale, size)
    raise TypeError(f'imresize expects a numpy array or a torch tensor, got {type(img).__name__}')


def imresize_uint8(img: np.ndarray, scale: float, size: Size | None = None) -> np.ndarray:
    """MATLAB-style bicubic resize (with antialiasing) of an 8-bit image.

    Args:
        img: ``uint8`` image, HxWxC (any channel order, channels are resized independently) or HxW.
        scale: Factor applied to both height and width, e.g. ``1 / 4`` for x4 downsampling.
        size: Output ``(height, width)``; by default ``ceil(h * scale)`` x ``ceil(w * scale)``, as in MATLAB.

    Returns:
        The resized ``uint8`` image with the same number of dimensions as ``img``, rounded to the
        nearest integer (MATLAB's ``imresize`` rounds ``uint8`` results the same way).
    """
    if img.dtype != np.uint8:
        raise ValueError(f'imresize_uint8 expects a uint8 image, got {img.dtype}')
    if img.ndim not in (2, 3):
        raise ValueError(f'imresize_uint8 expects an HxW or HxWxC image, got shape {img.shape}')
    resized = imresize(img.astype(np.float32) / 255., scale, size)
    return np.clip(np.round(resized * 255.), 0, 255).astype(np.uint8)


def modcrop(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the bottom and right edges so that height and width are multiples of ``multiple``.

    Args:
        img: Image of shape HxW or HxWxC.
        multiple: Positive integer both sides must be divisible by.

    Returns:
        A view of ``img`` with shape ``(h - h % multiple, w - w % multiple, ...)``.
    """
    if multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple}')
    h, w = img.shape[:2]
    if h < multiple or w < multiple:
        raise ValueError(f'image of size {h}x{w} is smaller than the crop multiple {multiple}')
    return img[:h - h % multiple, :w - w % multiple, ...]


def imresize_tensor(images: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB-style bicubic resize (with antialiasing) of a batch of float images.

    Args:
        images: ``N x C x H x W`` tensor in [0, 1].
        scale: Factor applied to both height and width.

    Returns:
        The resized batch, neither clipped nor rounded, on the input's device and dtype.
    """
    if images.ndim != 4:
        raise ValueError(f'imresize_tensor expects an NxCxHxW tensor, got shape {tuple(images.shape)}')
    return imresize(images, scale)


def progressive_input(hr: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """NODE-SR's ``I(t)``: HR downscaled by ``1/t``, quantised to 8 bits, upscaled by ``t``; HR's size and grid.

    With MATLAB sizing, down-then-up does not return to the HR size for most non-integer ``t``. So, as the
    NODE-SR paper describes, each side is padded before resizing and centre-cropped afterwards: with ``t = p/q``
    in lowest terms (3.7 = 37/10), padding to a multiple of ``p`` makes the LR side exactly ``q/p`` times the
    padded side and the upscaled side exactly the padded side again, so both resizes use the exact scale and
    the crop returns HR's pixel grid with no sub-pixel shift. The padding mirrors the border (``c b a | a b c``,
    MATLAB's own border rule) and is split evenly between the two sides, an odd pixel going to the bottom /
    right. The LR image is quantised to 8 bits because a real LR input is an 8-bit image. Padding, downscaling,
    cropping and upscaling are linear, so each side's chain is folded into two cached matrices and a batch
    costs four matrix products.

    Args:
        hr: ``N x C x H x W`` batch in [0, 1], any device and floating dtype.
        scale: ``t >= 1``, one for the batch or a tensor of ``N`` per-sample values. Each ``t`` must be a
            fraction with a denominator of at most 1000, i.e. have at most three decimals (1.1, 2.345, 4.0);
            float32 values of such scales are recognised.

    Returns:
        ``I(t)`` with ``hr``'s shape, dtype and device, not clipped (bicubic overshoots a little). Samples with
        ``t = 1`` are ``hr`` itself.
    """
    if hr.ndim != 4:
        raise ValueError(f'progressive_input expects an NxCxHxW tensor, got shape {tuple(hr.shape)}')
    groups: dict[Fraction, list[int]] = {}
    for index, t in enumerate(_per_sample_scales(scale, hr.shape[0])):
        fraction = _simple_fraction(t)
        if fraction is None:
            raise ValueError(f'progressive_input: scale {t} is not a fraction p/q with q <= {_MAX_DENOMINATOR}; '
                             f'I(t) pads to a multiple of p, so t needs at most three decimals')
        groups.setdefault(fraction, []).append(index)
    if len(groups) == 1:
        return _progressive(hr, next(iter(groups)))
    out = torch.empty_like(hr)
    for fraction, indices in groups.items():
        index = torch.tensor(indices, device=hr.device)
        out[index] = _progressive(hr[index], fraction)
    return out


def upscale_lr(lr: torch.Tensor, scale: float | torch.Tensor, size: Size | None = None) -> torch.Tensor:
    """``I(t0)`` from a real LR image: MATLAB-style bicubic upscaling by ``t``, cropped top-left to ``size``.

    This is the evaluation protocol of Meta-SR / NODE-SR: the SR result of an ``h x w`` LR image covers
    ``int(h * t) x int(w * t)`` pixels of the HR image, anchored at its top-left corner.

    Args:
        lr: ``N x C x h x w`` batch of LR images, [0, 1].
        scale: ``t >= 1``; a number, or a tensor whose values are all equal (such as a batch's ``'scale'``).
        size: Output ``(H, W)``, e.g. the reference HR's size. By default ``(floor(h * t), floor(w * t))``.

    Returns:
        The upscaled batch, neither clipped nor rounded, on ``lr``'s device and dtype.
    """
    if lr.ndim != 4:
        raise ValueError(f'upscale_lr expects an NxCxHxW tensor, got shape {tuple(lr.shape)}')
    scales = set(_per_sample_scales(scale, lr.shape[0]))
    if len(scales) != 1:
        raise ValueError(f'upscale_lr needs one scale for the whole batch, got {sorted(scales)}')
    t = exact_scale(scales.pop())
    if size is None:
        # int(): while a graph is traced for export the sides are tensors, which a Fraction does not multiply.
        size = (math.floor(int(lr.shape[-2]) * t), math.floor(int(lr.shape[-1]) * t))
    # float(t) rather than the value given: a float32 3.7 would otherwise shift the sampling grid by ~1e-6 px.
    return imresize(lr, float(t), size)


def exact_scale(scale: float) -> Fraction:
    """The exact ratio a scale stands for: 3.7 -> 37/10, ``1 / 1.1`` -> 10/11, float32 3.7 -> 37/10.

    Decimal scales are inexact in binary floating point (and float32 after a DataLoader), so sizes such as
    ``int(h_lr * t)`` or ``ceil(h / t)`` computed in floats can fall on the wrong side of an integer. Sizes
    computed from this fraction (``math.floor(h * exact_scale(t))``) are exact. Values that are no fraction
    with a denominator of at most 1000 are returned as their exact binary value.

    Args:
        scale: Any positive number.

    Returns:
        The fraction.
    """
    return _simple_fraction(scale) or Fraction(scale)


def _per_sample_scales(scale: float | torch.Tensor, n: int) -> list[float]:
    if isinstance(scale, torch.Tensor):
        values = scale.detach().flatten().tolist()
        if len(values) == 1:
            values *= n
        elif len(values) != n:
            raise ValueError(f'scale holds {len(values)} values for a batch of {n}')
    else:
        values = [scale] * n
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 1:
            raise ValueError(f'scale must be a number >= 1, got {value!r}')
    return [float(value) for value in values]


def _simple_fraction(value: float) -> Fraction | None:
    """The fraction with a denominator of at most 1000 that ``value`` stands for, or None (see exact_scale)."""
    fraction = Fraction(value).limit_denominator(_MAX_DENOMINATOR)
    # float32 rounds to within 2**-24 (6e-8) relative, so a float32 copy of the fraction passes too.
    return fraction if abs(fraction - Fraction(value)) <= 1e-7 * abs(value) else None


def _resize_planes(x: torch.Tensor, scale: float, size: Size | None) -> torch.Tensor:
    """Resize the last two dimensions of ``x`` (``... x H x W``)."""
    if isinstance(scale, bool) or not isinstance(scale, Real) or not scale > 0:
        raise ValueError(f'scale must be a positive number, got {scale!r}')
    in_h, in_w = x.shape[-2:]
    if size is None:
        # MATLAB computes the size in floating point from the scale it is given; so does BasicSR.
        size = (math.ceil(in_h * scale), math.ceil(in_w * scale))
    out_h, out_w = (int(side) for side in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f'output size must be positive, got {tuple(size)}')
    # Half precision would lose about three digits over a wide antialiasing kernel; compute in float32 instead.
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    rows = _weights(_resize_matrix, (in_h, out_h, float(scale)), x.device, dtype)
    cols = _weights(_resize_matrix, (in_w, out_w, float(scale)), x.device, dtype)
    planes = x.to(dtype)
    # Both orders give the same result; resizing first along the axis that shrinks the work more is cheaper.
    if out_h * in_w * (in_h + out_w) <= in_h * out_w * (in_w + out_h):
        resized = (rows @ planes) @ cols.T
    else:
        resized = rows @ (planes @ cols.T)
    return resized.to(x.dtype) if x.is_floating_point() else resized


def _progressive(hr: torch.Tensor, fraction: Fraction) -> torch.Tensor:
    if fraction == 1:
        return hr
    dtype = hr.dtype if hr.dtype in (torch.float32, torch.float64) else torch.float32
    down_h, up_h = _weights(_progressive_matrices, (hr.shape[-2], fraction), hr.device, dtype)
    down_w, up_w = _weights(_progressive_matrices, (hr.shape[-1], fraction), hr.device, dtype)
    lr = down_h @ hr.to(dtype) @ down_w.T
    lr = lr.clamp(0, 1).mul(255).round().div(255)
    return (up_h @ lr @ up_w.T).to(hr.dtype)


def _weights(build, key: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``build(*key)``'s float64 numpy matrices as tensors on ``device``, cached per device and dtype.

    Under a fake-tensor mode (memory traced without compute) they are made afresh: a fake tensor in the cache would
    take the place of the real weights in every later call.
    """
    if torch._guards.detect_fake_mode() is not None:
        return _weights_as_tensors.__wrapped__(build, key, device, dtype)
    return _weights_as_tensors(build, key, device, dtype)


@lru_cache(maxsize=512)
def _weights_as_tensors(build, key: tuple, device: torch.device, dtype: torch.dtype
                        ) -> torch.Tensor | tuple[torch.Tensor, ...]:
    matrices = build(*key)
    if isinstance(matrices, tuple):
        return tuple(torch.from_numpy(matrix).to(device=device, dtype=dtype) for matrix in matrices)
    return torch.from_numpy(matrices).to(device=device, dtype=dtype)


def _resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """``out_length x in_length`` matrix of MATLAB's bicubic ``imresize`` along one axis.

    The weights follow MATLAB's ``contributions``: output pixel ``x`` (1-based) is centred on input position
    ``u = x / scale + (1 - 1 / scale) / 2``; downscaling stretches the cubic kernel by ``1 / scale`` (the
    antialiasing); each row is normalised to sum 1; and input indices outside the image are mirrored with the
    edge pixel repeated, periodically, exactly as MATLAB does.
    """
    antialias = scale < 1
    kernel_width = _CUBIC_WIDTH / scale if antialias else _CUBIC_WIDTH
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    taps = math.ceil(kernel_width) + 2
    indices = np.floor(u - kernel_width / 2)[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((out_length, in_length))
    rows = np.broadcast_to(np.arange(out_length)[:, None], indices.shape)
    np.add.at(matrix, (rows, _mirror(indices.astype(np.int64) - 1, in_length)), weights)
    return matrix


def _progressive_matrices(length: int, fraction: Fraction) -> tuple[np.ndarray, np.ndarray]:
    """``(down, up)`` for one axis of :func:`progressive_input`: ``I(t) = up @ quantise(down @ x)``.

    ``down`` = (resize by ``q/p``) @ (mirror padding to a multiple of ``p``); ``up`` = rows of (resize by ``p/q``)
    that the centre crop keeps.
    """
    p, q = fraction.numerator, fraction.denominator
    padded = -(-length // p) * p
    before = (padded - length) // 2
    pad = np.zeros((padded, length))
    pad[np.arange(padded), _mirror(np.arange(padded) - before, length)] = 1
    lr_length = padded // p * q
    down = _resize_matrix(padded, lr_length, q / p) @ pad
    up = _resize_matrix(lr_length, padded, p / q)[before:before + length]
    return down, np.ascontiguousarray(up)


def _mirror(indices: np.ndarray, length: int) -> np.ndarray:
    """Map 0-based indices into ``[0, length)`` by symmetric reflection (``-1 -> 0``, ``length -> length - 1``)."""
    period = np.mod(indices, 2 * length)
    return np.where(period < length, period, 2 * length - 1 - period)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, MATLAB's 'bicubic'."""
    absx = np.abs(x)
    absx2, absx3 = absx**2, absx**3
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return inner + outer
