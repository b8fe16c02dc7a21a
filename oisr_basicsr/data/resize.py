"""Image resizing for the package: every LR image it makes goes through :func:`imresize_uint8`.

BasicSR's benchmarks and DIV2K's official LR images come from MATLAB's ``imresize`` (bicubic with
antialiasing); :func:`basicsr.utils.matlab_functions.imresize` reproduces it, so LR images made here
match the ones the published numbers were measured on.
"""

import numpy as np
import torch
from basicsr.utils.matlab_functions import imresize


def imresize_uint8(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB-style bicubic resize (with antialiasing) of an 8-bit image.

    Args:
        img: ``uint8`` image, HxWxC (any channel order, channels are resized independently) or HxW.
        scale: Factor applied to both height and width, e.g. ``1 / 4`` for x4 downsampling; the output
            size is ``ceil(h * scale)`` x ``ceil(w * scale)``, as in MATLAB.

    Returns:
        The resized ``uint8`` image with the same number of dimensions as ``img``, rounded to the
        nearest integer (MATLAB's ``imresize`` rounds ``uint8`` results the same way).
    """
    if img.dtype != np.uint8:
        raise ValueError(f'imresize_uint8 expects a uint8 image, got {img.dtype}')
    if img.ndim not in (2, 3):
        raise ValueError(f'imresize_uint8 expects an HxW or HxWxC image, got shape {img.shape}')
    resized = imresize(img.astype(np.float32) / 255., scale)
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
    resized = [imresize(image.float().cpu(), scale) for image in images]
    return torch.stack(resized).to(device=images.device, dtype=images.dtype)
