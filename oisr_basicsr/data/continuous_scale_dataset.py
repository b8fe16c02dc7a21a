"""HR images with scales drawn per sample: NODE-SR training pairs and arbitrary-scale benchmark pairs.

Training (``phase: train``): a random ``gt_size`` patch of an HR image, flipped and rotated, and its NODE-SR
input ``I(t)`` (:func:`~oisr_basicsr.data.resize.progressive_input`) for a scale ``t`` drawn per sample.

Validation and test (any other phase): the whole HR image, its LR image made on the fly with the protocol of
the arbitrary-scale literature, and the reference HR that an SR result of that LR image is compared with:

- ``t <= 4``, Meta-SR (used by NODE-SR's Table 2): when ``h / t`` is not an integer the bottom 4 rows are dropped
  (the same for the width, right columns); LR = MATLAB bicubic ``imresize(HR, 1 / t)``, ``ceil(h / t)`` rows,
  8-bit; the reference is the original HR cropped top-left to ``int(h_lr * t) x int(w_lr * t)``.
- ``t > 4``, LIIF: ``h_lr = floor(h / t)``, the reference is HR cropped top-left to ``round(h_lr * t)`` rows
  (the same for the width), and LR = MATLAB bicubic of the reference to ``h_lr x w_lr``, 8-bit.

Sizes are computed exactly (:func:`~oisr_basicsr.data.resize.exact_scale`), not in floating point.
"""

import math
import os
import random
from numbers import Real
from pathlib import Path

import numpy as np
import torch
from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.transforms import augment
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ..images import IMAGE_SUFFIXES
from .resize import exact_scale, imresize_uint8, progressive_input

DEFAULT_SCALES = tuple(round(1 + 0.1 * k, 1) for k in range(1, 31))
"""NODE-SR's training scales: 1.1, 1.2, ..., 4.0."""
METASR_MAX_SCALE = 4
"""Largest scale evaluated with the Meta-SR protocol; larger ones follow LIIF's."""
METASR_DROP = 4
"""Rows (columns) Meta-SR drops when the height (width) is not a multiple of the scale."""
SCALE_RANGE_STEP = 100
"""``scale_range`` draws multiples of 1 / 100, so that ``I(t)`` pads to a multiple of at most ``100 * t``."""


def benchmark_pair(hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The LR image and the reference HR of one test image at scale ``t`` (Meta-SR for t <= 4, LIIF above).

    Args:
        hr: ``uint8`` HR image, HxWxC or HxW.
        scale: ``t >= 1``.

    Returns:
        ``(lr, reference)``, both ``uint8`` with ``hr``'s layout; an SR result of ``lr`` must have the reference's
        size, which :func:`~oisr_basicsr.data.resize.upscale_lr` gives by default for ``t <= 4``.
    """
    if not scale >= 1:
        raise ValueError(f'benchmark_pair: scale must be >= 1, got {scale!r}')
    h, w = hr.shape[:2]
    lr_size, source_size, reference_size = benchmark_sizes(h, w, scale)
    source = hr[:source_size[0], :source_size[1]]
    reference = hr[:reference_size[0], :reference_size[1]]
    if min(lr_size) < 1 or min(source.shape[:2]) < 1:
        raise ValueError(f'a {h}x{w} image is too small for scale {scale}')
    return imresize_uint8(source, float(1 / exact_scale(scale)), lr_size), reference


def benchmark_sizes(height: int, width: int, scale: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The sizes :func:`benchmark_pair` works with for a ``height x width`` HR image at scale ``t``: the LR image's,
    the HR crop it is made from, and the reference's (the SR result's), each ``(H, W)``."""
    t = exact_scale(scale)
    if t <= METASR_MAX_SCALE:
        h_in, w_in = (side if side % t == 0 else side - METASR_DROP for side in (height, width))
        lr_size = (math.ceil(h_in / t), math.ceil(w_in / t))
        return lr_size, (h_in, w_in), (math.floor(lr_size[0] * t), math.floor(lr_size[1] * t))
    lr_size = (math.floor(height / t), math.floor(width / t))
    reference = (round(lr_size[0] * t), round(lr_size[1] * t))
    return lr_size, reference, reference


@DATASET_REGISTRY.register()
class ContinuousScalePairedDataset(data.Dataset):
    """HR images only; LR inputs are made on the fly at continuous scales (see the module docstring).

    The scale of a test / validation dataset is ``test_scale``, not ``scale``: BasicSR's option parser overwrites
    every dataset's ``scale`` with the option file's top-level ``scale``.

    Args:
        opt: Dataset options:

            - ``phase`` (str): ``'train'`` for training pairs; anything else gives benchmark pairs.
            - ``dataroot_gt`` (str): Folder of HR images, or an LMDB (``*.lmdb`` with ``meta_info.txt``).
            - ``io_backend`` (dict): ``{'type': 'disk'}`` (default) or ``{'type': 'lmdb'}``, plus FileClient
              arguments.
            - ``meta_info_file`` (str, optional): For the disk backend, a list of the image files to use, one per
              line (first word, relative to ``dataroot_gt``), as in BasicSR.
            - ``gt_size`` (int, train): Side of the square HR patches.
            - ``use_hflip``, ``use_rot`` (bool, train): Flip / rotate the patches. Default: true.
            - ``scales`` (list, train): Scales ``t > 1`` drawn uniformly per sample, at most three decimals each.
            - ``scale_range`` (list, train): ``[low, high]`` with ``1 < low <= high``: ``t`` is drawn uniformly
              from the multiples of 0.01 in it. Not together with ``scales``; without either, ``t`` comes from
              ``DEFAULT_SCALES`` (1.1, 1.2, ..., 4.0).
            - ``test_scale`` (float, validation / test): The scale ``t >= 1`` of every pair.

    Items are dicts of ``'gt'`` (3xHxW float32 RGB in [0, 1]), ``'lq'``, ``'scale'`` (0-d float32 tensor ``t``),
    ``'gt_path'`` and ``'lq_path'`` (the same path: LR inputs are made from the GT image). In training ``'gt'``
    is the patch and ``'lq'`` its ``I(t)``, of the same size; otherwise ``'gt'`` is the reference HR and ``'lq'``
    the 8-bit LR image as floats. Grayscale images are read as three equal channels.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.is_train = opt.get('phase') == 'train'
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = self.io_backend_opt.pop('type', 'disk')
        if self.backend not in ('disk', 'lmdb'):
            raise ValueError(f"io_backend: type must be 'disk' or 'lmdb', got {self.backend!r}")
        self.root = _check_root(opt.get('dataroot_gt'), self.backend)
        self.paths = self._list_paths()
        self.file_client = None
        if self.is_train:
            self.gt_size = _check_gt_size(opt.get('gt_size'))
            self.use_hflip = _check_flag(opt, 'use_hflip')
            self.use_rot = _check_flag(opt, 'use_rot')
            self.scales = _check_train_scales(opt)
        else:
            self.test_scale = _check_test_scale(opt)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        if self.file_client is None:
            # Opened here, in the worker process: an LMDB environment must not cross a fork.
            backend_opt = {'db_paths': [str(self.root)], 'client_keys': ['gt']} if self.backend == 'lmdb' else {}
            self.file_client = FileClient(self.backend, **backend_opt, **self.io_backend_opt)
        gt_path = self.paths[index]
        img_bytes = self.file_client.get(gt_path, 'gt')
        if self.is_train:
            gt = self._train_patch(imfrombytes(img_bytes, float32=True), gt_path)
            scale = random.choice(self.scales)
            lq = progressive_input(gt[None], scale)[0]
        else:
            scale = self.test_scale
            lr, reference = benchmark_pair(imfrombytes(img_bytes, float32=False), scale)
            lq, gt = img2tensor([lr.astype(np.float32) / 255., reference.astype(np.float32) / 255.], bgr2rgb=True)
        return {'gt': gt, 'lq': lq, 'scale': torch.tensor(scale, dtype=torch.float32), 'gt_path': gt_path,
                'lq_path': gt_path}

    def _train_patch(self, img: np.ndarray, gt_path: str) -> torch.Tensor:
        h, w = img.shape[:2]
        size = self.gt_size
        if h < size or w < size:
            raise ValueError(f'{gt_path} is {h}x{w} (HxW), smaller than gt_size {size}')
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        patch = augment(img[top:top + size, left:left + size], self.use_hflip, self.use_rot)
        return img2tensor(patch, bgr2rgb=True)

    def _list_paths(self) -> list[str]:
        if self.backend == 'lmdb':
            paths = paths_from_lmdb(str(self.root))
            if not paths:
                raise ValueError(f'dataroot_gt: {self.root}/meta_info.txt lists no images')
            return paths
        meta_info_file = self.opt.get('meta_info_file')
        if meta_info_file is None:
            paths = sorted(str(path) for path in self.root.iterdir()
                           if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise ValueError(f'dataroot_gt: folder {self.root} holds no images ({" ".join(IMAGE_SUFFIXES)})')
            return paths
        if not os.path.isfile(meta_info_file):
            raise ValueError(f'meta_info_file: {meta_info_file} does not exist')
        with open(meta_info_file) as lines:
            paths = [str(self.root / line.split()[0]) for line in lines if line.strip()]
        if not paths:
            raise ValueError(f'meta_info_file: {meta_info_file} lists no images')
        for path in paths:
            if not os.path.isfile(path):
                raise ValueError(f'meta_info_file: {meta_info_file} lists {path}, which does not exist')
        return paths


def _check_root(root: object, backend: str) -> Path:
    if not isinstance(root, str | os.PathLike):
        raise ValueError(f'dataroot_gt: a folder of HR images is required, got {root!r}')
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f'dataroot_gt: folder {root} does not exist')
    if backend == 'lmdb':
        if root.suffix != '.lmdb':
            raise ValueError(f"dataroot_gt: {root} must end with '.lmdb' for the lmdb io_backend")
        if not (root / 'meta_info.txt').is_file():
            raise ValueError(f'dataroot_gt: LMDB {root} has no meta_info.txt (it lists the keys to read)')
    return root


def _check_gt_size(gt_size: object) -> int:
    if isinstance(gt_size, bool) or not isinstance(gt_size, int) or gt_size < 1:
        raise ValueError(f'gt_size: the side of the training patches must be a positive integer, got {gt_size!r}')
    return gt_size


def _check_flag(opt: dict, key: str) -> bool:
    value = opt.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f'{key}: must be true or false, got {value!r}')
    return value


def _check_train_scales(opt: dict) -> list[float]:
    if opt.get('scales') is not None and opt.get('scale_range') is not None:
        raise ValueError('scales and scale_range: give one of them, not both')
    if opt.get('scale_range') is not None:
        scale_range = opt['scale_range']
        if (not isinstance(scale_range, list | tuple) or len(scale_range) != 2
                or not all(_is_number(value) and value > 1 for value in scale_range)
                or scale_range[0] > scale_range[1]):
            raise ValueError(f'scale_range: must be [low, high] with 1 < low <= high, got {scale_range!r}')
        steps = range(math.ceil(scale_range[0] * SCALE_RANGE_STEP), math.floor(scale_range[1] * SCALE_RANGE_STEP) + 1)
        if not steps:
            raise ValueError(f'scale_range: {scale_range!r} contains no multiple of 0.01')
        return [step / SCALE_RANGE_STEP for step in steps]
    scales = opt.get('scales', DEFAULT_SCALES)
    if not isinstance(scales, list | tuple) or not scales:
        raise ValueError(f'scales: must be a non-empty list of numbers > 1, got {scales!r}')
    for scale in scales:
        if not _is_number(scale) or scale <= 1:
            raise ValueError(f'scales: every scale must be a number > 1 (t = 1 is the HR image itself), got {scale!r}')
        if exact_scale(scale).denominator > 1000:
            raise ValueError(f'scales: {scale!r} has more than three decimals; I(t) pads to a multiple of the '
                             f'numerator of t, so t must be a simple fraction such as 3.7 = 37/10')
    return [float(scale) for scale in scales]


def _check_test_scale(opt: dict) -> float:
    if 'test_scale' not in opt:
        raise ValueError("test_scale: required for validation / test datasets (the key is not 'scale' because "
                         "BasicSR overwrites a dataset's scale with the option file's top-level scale)")
    scale = opt['test_scale']
    if not _is_number(scale) or scale < 1:
        raise ValueError(f'test_scale: must be a number >= 1, got {scale!r}')
    return float(scale)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
