"""Evaluate on a benchmark from its HR images alone: LR images are made on the fly, as the papers made them."""

from pathlib import Path

import cv2
import numpy as np
from basicsr.utils import bgr2ycbcr, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ..errors import OptionError
from ..images import IMAGE_SUFFIXES, read_image
from .resize import imresize, imresize_uint8, modcrop

# How each protocol turns an HR file into a (gt, lq) pair; see BenchmarkHRDataset's docstring.
PROTOCOLS = ('rgb', 'matlab_y')


@DATASET_REGISTRY.register()
class BenchmarkHRDataset(data.Dataset):
    """A super-resolution benchmark (Set5, Set14, B100, Urban100, ...) from its HR images alone.

    Each item follows the papers' protocol for integer scales: the HR image is
    cropped at the bottom and right to a multiple of the scale ("modcrop") and
    its LR image is made on the fly with MATLAB-style bicubic downsampling
    rounded to 8 bits (:func:`~oisr_basicsr.data.resize.imresize_uint8`).
    Images are decoded exactly as :class:`basicsr.data.PairedImageDataset`
    decodes them (grayscale files become three equal channels, so BasicSR
    measures their Y as ``16 + 219/255 * gray``), and items have its keys and
    layout, so SRModel's validation and BasicSR's PSNR / SSIM work unchanged.

    The ``matlab_y`` protocol is the one of the SRCNN / VDSR MATLAB scripts, which produced the bicubic
    rows that papers quote (VDSR, EDSR, RCAN, OISR): the HR image is reduced to its 8-bit Y channel
    (MATLAB's ``rgb2ycbcr`` on ``uint8``, rounded; a grayscale file is its own Y) and the LR image is
    that Y channel downsampled and kept in floating point, not rounded. Items have one channel, so it
    suits the ``Bicubic`` baseline and single-channel networks, not RGB ones.

    Args:
        opt: Dataset options (a ``datasets`` entry of a BasicSR option file):

            * ``dataroot_gt``: folder of HR images (``.png``, ``.jpg``, ``.bmp``,
              ``.tif``); files whose names start with ``.`` are skipped.
            * ``scale``: integer downsampling factor >= 2; BasicSR copies the
              top-level ``scale`` here.
            * ``modcrop``: crop the HR images to a multiple of this instead of
              the scale; a multiple of the scale. ``12`` reproduces the
              ``GTmod12`` / ``LRbicx{s}`` folders of
              ``oisr prepare-data benchmark``. Default: the scale.
            * ``protocol``: ``rgb`` (default): 8-bit RGB HR and LR, the protocol of trained networks
              (EDSR-PyTorch, BasicSR); ``matlab_y``: 8-bit Y HR and unrounded Y LR, the protocol of
              the published bicubic baselines.
            * ``io_backend``: ``{type: disk}`` (the only backend supported).
            * ``phase``: set by BasicSR; only ``val`` and ``test`` are supported.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        name = f'dataset {opt.get("name", "?")!r} (BenchmarkHRDataset)'
        self.scale = _check_scale(opt.get('scale'), name)
        self.crop_multiple = _check_modcrop(opt.get('modcrop', self.scale), self.scale, name)
        self.protocol = opt.get('protocol', 'rgb')
        if self.protocol not in PROTOCOLS:
            raise OptionError(f'{name}: protocol: {self.protocol!r} is not one of {", ".join(PROTOCOLS)}.')
        if opt.get('phase', 'test') not in ('val', 'test'):
            raise OptionError(f'{name}: it is for validation and testing; it cannot be a {opt["phase"]!r} dataset.')
        if 'dataroot_lq' in opt:
            # Ignoring it silently would let an option file look as if it tested on given LR images.
            raise OptionError(f'{name}: dataroot_lq: this dataset makes the LR images from dataroot_gt itself; '
                              'remove dataroot_lq, or use PairedImageDataset to test on given LR images.')
        backend = opt.get('io_backend', {'type': 'disk'})
        if backend.get('type') != 'disk':
            raise OptionError(f'{name}: io_backend.type: {backend.get("type")!r} is not supported; it reads image '
                              'files (type: disk).')
        self.paths = list_hr_images(opt.get('dataroot_gt'), name)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        # matlab_y must know whether the file itself is grayscale; color would expand it to three channels. Both
        # decode as BasicSR's imfrombytes does with the same flag ('color' or 'unchanged').
        img = read_image(path, color=self.protocol != 'matlab_y')
        try:
            img = modcrop(img, self.crop_multiple)
        except ValueError as error:
            raise ValueError(f'{path}: {error}') from None
        if self.protocol == 'matlab_y':
            img_gt, img_lq = _matlab_y_pair(img, self.scale, path)
            img_gt, img_lq = img2tensor([img_gt[..., None], img_lq[..., None]], bgr2rgb=False, float32=True)
        else:
            img_lq = imresize_uint8(img, 1 / self.scale)
            # The same float conversion as PairedImageDataset's imfrombytes(float32=True): both give equal tensors.
            img_gt, img_lq = img2tensor([img.astype(np.float32) / 255., img_lq.astype(np.float32) / 255.],
                                        bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': path, 'gt_path': path}

    def __len__(self) -> int:
        return len(self.paths)


def _matlab_y_pair(img: np.ndarray, scale: int, path: str) -> tuple[np.ndarray, np.ndarray]:
    """HR Y in [0, 1] (k / 255) and its unrounded bicubic LR, as the SRCNN / VDSR MATLAB scripts make them."""
    if img.dtype != np.uint8:
        raise ValueError(f'{path}: protocol matlab_y reads 8-bit images, this one is {img.dtype}.')
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if img.shape[2] == 4 else img
        # On uint8 input bgr2ycbcr rounds Y to integers, as MATLAB's rgb2ycbcr does.
        img = img[..., 0] if img.shape[2] == 1 else bgr2ycbcr(img, y_only=True)
    y = img.astype(np.float64) / 255.
    return y.astype(np.float32), imresize(y, 1 / scale).astype(np.float32)


def _check_scale(scale: object, name: str) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise OptionError(f'{name}: scale: {scale!r} is not supported; the benchmark protocol needs an integer '
                          'scale >= 2 (set the top-level scale key).')
    return scale


def _check_modcrop(multiple: object, scale: int, name: str) -> int:
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1 or multiple % scale:
        raise OptionError(f'{name}: modcrop: {multiple!r} must be a positive multiple of the scale {scale}, so '
                          'that the cropped HR image downsamples exactly.')
    return multiple


def list_hr_images(folder: object, name: str) -> list[str]:
    """The image files of ``folder`` that the dataset reads, sorted (files whose names start with ``.`` skipped).

    Args:
        folder: The ``dataroot_gt`` folder.
        name: How errors name the dataset.

    Raises:
        OptionError: no folder, or one without images.
    """
    if folder is None:
        raise OptionError(f'{name}: dataroot_gt is missing; set it to the folder of HR images.')
    root = Path(folder)
    if not root.is_dir():
        raise OptionError(f'{name}: dataroot_gt: folder {root} does not exist.')
    paths = sorted(str(path) for path in root.iterdir()
                   if path.is_file() and not path.name.startswith('.') and path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise OptionError(f'{name}: dataroot_gt: folder {root} holds no images ({" ".join(IMAGE_SUFFIXES)}).')
    return paths
