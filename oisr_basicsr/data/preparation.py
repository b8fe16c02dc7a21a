"""Turn a folder of HR images (DIV2K or any other) into the layouts BasicSR's datasets read.

Training data follows BasicSR's ``scripts/data_preparation``: HR images are cut into overlapping
sub-images (:func:`extract_subimages`), each sub-image is downsampled with MATLAB bicubic
(:func:`make_lr_images`), and both folders can be packed into LMDBs (:func:`make_lmdb`);
:func:`prepare_training_data` does all three. Benchmarks (Set5, Set14, ...) get BasicSR's
``GTmod12`` / ``LRbicx{s}`` folders (:func:`make_benchmark_folders`).

Every function refuses outputs that already exist or would lie outside the folder it was given, and, when it
fails or is interrupted, removes the outputs it had started, so an output it leaves behind is always complete.
Images are written through :func:`~oisr_basicsr.outputs.write_image`.
"""

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import product
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from tqdm import tqdm

from ..images import IMAGE_SUFFIXES, check_image, decode_image, read_image_header
from ..outputs import OutputRules, check_output_folder, output_in, write_image
from .resize import imresize_uint8, modcrop

BENCHMARK_GT_MULTIPLE = 12
LMDB_COMPRESS_LEVEL = 1

PathLike = str | os.PathLike


def extract_subimages(input_dir: PathLike,
                      output_dir: PathLike,
                      crop_size: int = 480,
                      step: int = 240,
                      thresh_size: int = 0,
                      num_workers: int | None = None) -> int:
    """Cut every image into overlapping square sub-images, as BasicSR's ``extract_subimages.py`` does.

    Crops start at ``range(0, h - crop_size + 1, step)``, plus ``h - crop_size`` when the strip left
    uncovered at the bottom is wider than ``thresh_size``; the same for the width. They are saved
    row by row as ``{stem}_s{index:03d}.png`` with ``index`` counting from 1.

    Args:
        input_dir: Folder of HR images.
        output_dir: Folder to create for the sub-images; must not exist yet.
        crop_size: Side of the square sub-images.
        step: Distance between consecutive crop positions.
        thresh_size: Largest uncovered edge strip that gets no extra crop.
        num_workers: Processes to use; ``None`` uses every CPU.

    Returns:
        The number of sub-images written.
    """
    _check_crop(crop_size, step, thresh_size)
    output_dir = Path(output_dir)
    with _fresh_outputs([output_dir]):
        paths = _checked_images(input_dir, crop_size, f'crop_size {crop_size}')
        output_dir.mkdir(parents=True)
        return _extract(paths, output_dir, crop_size, step, thresh_size, num_workers)


def make_lr_images(hr_dir: PathLike, lr_dir: PathLike, scale: int, num_workers: int | None = None) -> int:
    """Downsample every image by ``scale`` with :func:`~oisr_basicsr.data.resize.imresize_uint8`.

    Args:
        hr_dir: Folder of HR images; their sides must be multiples of ``scale``.
        lr_dir: Folder to create for the LR images (``{stem}.png``); must not exist yet.
        scale: Integer downsampling factor.
        num_workers: Processes to use; ``None`` uses every CPU.

    Returns:
        The number of LR images written.
    """
    (scale,) = _check_scales([scale])
    lr_dir = Path(lr_dir)
    with _fresh_outputs([lr_dir]):
        paths = _checked_images(hr_dir, scale, f'scale {scale}')
        lr_dir.mkdir(parents=True)
        return len(_map(partial(_downsample_one, output_dir=lr_dir, scale=scale), paths, num_workers, f'X{scale}'))


def make_benchmark_folders(hr_dir: PathLike,
                           output_root: PathLike,
                           scales: Iterable[int] = (2, 3, 4),
                           num_workers: int | None = None) -> list[Path]:
    """BasicSR's benchmark layout: ``GTmod12/`` and one ``LRbicx{s}/`` per scale, with the input's file stems.

    ``GTmod12`` holds each HR image cropped (bottom and right) to a multiple of 12, so that one GT
    serves x2, x3 and x4; ``LRbicx{s}`` holds that GT downsampled by ``s``. Images are saved as PNG.

    Args:
        hr_dir: Folder of HR images, e.g. ``Set5/HR``.
        output_root: Folder that receives the benchmark folders, e.g. ``datasets/Set5``.
        scales: Downsampling factors; each must divide 12.
        num_workers: Processes to use; ``None`` uses every CPU.

    Returns:
        The folders created, ``GTmod12`` first.
    """
    scales = _check_scales(scales)
    _check_scales_divide(scales, BENCHMARK_GT_MULTIPLE, 'scale {scale} does not divide {size}, '
                         'so GTmod{size} images cannot be downsampled by it exactly')
    gt_dir = output_in(output_root, f'GTmod{BENCHMARK_GT_MULTIPLE}')
    lr_dirs = {scale: output_in(output_root, f'LRbicx{scale}') for scale in scales}
    outputs = [gt_dir, *lr_dirs.values()]
    with _fresh_outputs(outputs):
        paths = _checked_images(hr_dir, BENCHMARK_GT_MULTIPLE, f'GTmod{BENCHMARK_GT_MULTIPLE}')
        for folder in outputs:
            folder.mkdir(parents=True)
        _map(partial(_benchmark_one, gt_dir=gt_dir, lr_dirs=lr_dirs), paths, num_workers, 'benchmark')
    return outputs


def make_lmdb(image_dir: PathLike, lmdb_path: PathLike) -> int:
    """Pack a folder of images into an LMDB with BasicSR's ``make_lmdb_from_imgs``.

    Keys are the file stems and values the images re-encoded as PNG (compression level 1);
    ``meta_info.txt`` gets one line ``{key}.png (h,w,c) 1`` per image, sorted by file name.

    Args:
        image_dir: Folder of images.
        lmdb_path: LMDB folder to create; must end with ``.lmdb`` and not exist yet.

    Returns:
        The number of images stored.
    """
    lmdb_path = Path(lmdb_path)
    if lmdb_path.suffix != '.lmdb':
        raise ValueError(f"LMDB path {lmdb_path} must end with '.lmdb' (BasicSR recognises LMDBs by it)")
    with _fresh_outputs([lmdb_path]):
        return _make_lmdb(_checked_images(image_dir, 1, 'an image'), lmdb_path)


def prepare_training_data(hr_dir: PathLike,
                          output_root: PathLike,
                          name: str,
                          scales: Iterable[int],
                          crop_size: int = 480,
                          step: int = 240,
                          lmdb: bool = True,
                          num_workers: int | None = None) -> list[Path]:
    """Sub-images, their LR versions and (optionally) LMDBs of both, named as in BasicSR's DIV2K options.

    Creates ``{name}_HR_sub/`` (see :func:`extract_subimages`) and ``{name}_LR_bicubic/X{s}_sub/``
    per scale (see :func:`make_lr_images`) in ``output_root``; with ``lmdb`` also
    ``{name}_HR_sub.lmdb`` and ``{name}_LR_bicubic_X{s}_sub.lmdb``, which share one key set.
    With ``name='DIV2K_train'`` these are the paths ``options/train_*.yml`` expect.

    Args:
        hr_dir: Folder of HR images, e.g. ``datasets/DIV2K/DIV2K_train_HR``.
        output_root: Folder that receives the outputs, e.g. ``datasets/DIV2K``.
        name: Prefix of the output names, e.g. ``DIV2K_train``; the outputs must stay inside ``output_root``.
        scales: Downsampling factors; each must divide ``crop_size``.
        crop_size: Side of the HR sub-images.
        step: Distance between consecutive crop positions.
        lmdb: Whether to pack the folders into LMDBs as well.
        num_workers: Processes to use; ``None`` uses every CPU.

    Returns:
        The outputs created: the HR folder, the LR folders, then the LMDBs in the same order.
    """
    scales = _check_scales(scales)
    _check_crop(crop_size, step, 0)
    _check_scales_divide(scales, crop_size, 'crop_size {size} is not divisible by scale {scale}, '
                         'so the x{scale} LR sub-images would not line up with the HR ones')
    hr_sub = output_in(output_root, f'{name}_HR_sub')
    lr_subs = [output_in(output_root, Path(f'{name}_LR_bicubic') / f'X{scale}_sub') for scale in scales]
    folders = [hr_sub, *lr_subs]
    lmdb_names = [f'{name}_HR_sub.lmdb', *(f'{name}_LR_bicubic_X{scale}_sub.lmdb' for scale in scales)]
    lmdbs = [output_in(output_root, lmdb_name) for lmdb_name in lmdb_names]
    outputs = folders + lmdbs if lmdb else folders
    with _fresh_outputs(outputs):
        paths = _checked_images(hr_dir, crop_size, f'crop_size {crop_size}')
        if lmdb:
            # Sub-image stems extend the input stems, so a bad key would otherwise surface only after all the cropping.
            _check_lmdb_keys(paths)
        hr_sub.mkdir(parents=True)
        _extract(paths, hr_sub, crop_size, step, 0, num_workers)
        sub_paths = _list_images(hr_sub)
        for scale, lr_sub in zip(scales, lr_subs, strict=True):
            lr_sub.mkdir(parents=True)
            _map(partial(_downsample_one, output_dir=lr_sub, scale=scale), sub_paths, num_workers, f'X{scale}')
        if lmdb:
            for folder, lmdb_path in zip(folders, lmdbs, strict=True):
                _make_lmdb(_list_images(folder), lmdb_path)
    return outputs


def _extract(paths: list[Path], output_dir: Path, crop_size: int, step: int, thresh_size: int,
             num_workers: int | None) -> int:
    crop = partial(_crop_one, output_dir=output_dir, crop_size=crop_size, step=step, thresh_size=thresh_size)
    return sum(_map(crop, paths, num_workers, 'crop'))


def _crop_starts(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


def _crop_one(path: Path, output_dir: Path, crop_size: int, step: int, thresh_size: int) -> int:
    img = _read_image(path)  # at least crop_size on each side: _checked_images
    h, w = img.shape[:2]
    positions = product(_crop_starts(h, crop_size, step, thresh_size), _crop_starts(w, crop_size, step, thresh_size))
    for index, (top, left) in enumerate(positions, start=1):
        _write_png(img[top:top + crop_size, left:left + crop_size, ...], output_dir / f'{path.stem}_s{index:03d}.png')
    return index


def _downsample_one(path: Path, output_dir: Path, scale: int) -> None:
    img = _read_image(path)
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f'{path} is {h}x{w} (HxW), which is not a multiple of scale {scale}; '
                         f'crop it first (oisr_basicsr.data.resize.modcrop)')
    _write_png(imresize_uint8(img, 1 / scale), output_dir / f'{path.stem}.png')


def _benchmark_one(path: Path, gt_dir: Path, lr_dirs: dict[int, Path]) -> None:
    img = _read_image(path)
    try:
        gt = modcrop(img, BENCHMARK_GT_MULTIPLE)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None
    _write_png(gt, gt_dir / f'{path.stem}.png')
    for scale, lr_dir in lr_dirs.items():
        _write_png(imresize_uint8(gt, 1 / scale), lr_dir / f'{path.stem}.png')


def _make_lmdb(paths: list[Path], lmdb_path: Path) -> int:
    _check_lmdb_keys(paths)
    raw_bytes = sum(_read_image(path).nbytes for path in paths)
    # BasicSR sizes the map from the first image alone, which overflows (lmdb.MapFullError) as soon as later
    # images are larger. Level-1 PNG hardly ever exceeds the raw pixels, and LMDB adds at most a page or two
    # per value, so twice the raw size plus two pages per image is a safe bound.
    map_size = 2 * raw_bytes + 2 * 4096 * len(paths) + 2**20
    make_lmdb_from_imgs(str(paths[0].parent), str(lmdb_path), [path.name for path in paths],
                        [path.stem for path in paths], compress_level=LMDB_COMPRESS_LEVEL, map_size=map_size)
    return len(paths)


def _check_lmdb_keys(paths: list[Path]) -> None:
    for path in paths:
        if '.' in path.stem:
            raise ValueError(f"{path}: LMDB keys are file stems, and BasicSR reads a key from meta_info.txt only up "
                             f"to its first '.', so '{path.stem}' would come back as '{path.stem.split('.')[0]}'; "
                             f"rename the file without dots")
        if not path.stem.isascii():
            raise ValueError(f'{path}: LMDB keys are file stems and BasicSR encodes them as ASCII; rename the file')


def _check_scales(scales: Iterable[int]) -> list[int]:
    scales = list(scales)
    if not scales:
        raise ValueError('at least one scale is needed')
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 2:
            raise ValueError(f'scales must be integers >= 2, got {scale!r}')
    return sorted({int(scale) for scale in scales})


def _check_scales_divide(scales: list[int], size: int, refusal: str) -> None:
    """Refuse the first scale that does not divide ``size``, with ``refusal`` formatted with ``scale`` and ``size``."""
    for scale in scales:
        if size % scale:
            raise ValueError(refusal.format(scale=scale, size=size))


def _check_crop(crop_size: int, step: int, thresh_size: int) -> None:
    if crop_size < 1 or step < 1 or thresh_size < 0:
        raise ValueError(f'crop_size and step must be positive and thresh_size non-negative, '
                         f'got crop_size={crop_size}, step={step}, thresh_size={thresh_size}')


def list_image_files(folder: PathLike, what: str = 'image folder',
                     extensions: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The images directly in ``folder``, sorted by name.

    Args:
        folder: The folder.
        what: How the messages name the folder.
        extensions: The lower-case file name endings of images.

    Raises:
        FileNotFoundError: if ``folder`` is not a folder.
        ValueError: if it holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{what} {folder} does not exist')
    paths = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in extensions)
    if not paths:
        raise ValueError(f'{what} {folder} holds no images ({" ".join(extensions)})')
    return paths


def _list_images(folder: PathLike) -> list[Path]:
    paths = list_image_files(folder)
    stems = {}
    for path in paths:
        if path.stem in stems:
            # Outputs are named after the stem only, so the second image would overwrite the first.
            raise ValueError(f'{stems[path.stem]} and {path} have the same file stem')
        stems[path.stem] = path
    return paths


def _checked_images(folder: PathLike, min_side: int, needed_by: str) -> list[Path]:
    """The images of ``folder`` (:func:`_list_images`), each decoded once by the image gate before any output is
    made, so that a damaged file, or one with a side shorter than ``min_side``, stops the run with nothing written.

    In this process: decoding is a small part of the work that follows (every output is encoded as PNG), and a
    spawned pool costs seconds of start-up (each worker imports torch) before it checks a single image."""
    paths = _list_images(folder)
    _map(partial(check_image, min_side=min_side, needed_by=needed_by), paths, 1, 'check')
    return paths


def _read_image(path: Path) -> np.ndarray:
    # Every file read here passed _checked_images or is a crop this run wrote: decoded, not checked again.
    img = decode_image(read_image_header(path))
    if img.dtype != np.uint8:
        raise ValueError(f'{path} has {img.dtype} pixels; only 8-bit images are supported')
    return img


def _write_png(img: np.ndarray, path: Path) -> None:
    write_image(path, img)


def _map(func: Callable[[Path], object], paths: Sequence[Path], num_workers: int | None, desc: str) -> list:
    workers = min(num_workers or os.cpu_count() or 1, len(paths))
    # disable=None: a bar on a terminal only; in a log or a pipe every update of it would be one more line.
    if workers <= 1:
        return [func(path) for path in tqdm(paths, desc=desc, unit='image', disable=None)]
    # Spawned, not forked: a fork inherits torch's OpenMP thread pool in a state that can deadlock the child.
    with get_context('spawn').Pool(workers, initializer=_init_worker) as pool:
        return list(tqdm(pool.imap_unordered(func, paths), total=len(paths), desc=desc, unit='image',
                         disable=None))


def _init_worker() -> None:
    # The workers already occupy every core; more threads each would only oversubscribe them.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@contextmanager
def _fresh_outputs(outputs: list[Path]) -> Iterator[None]:
    """Refuse outputs that exist (or cannot be made); on any failure, remove the outputs and the parent folders
    made for them."""
    for output in outputs:
        check_output_folder(output, OutputRules(replace=False))
    new_parents = {parent for output in outputs for parent in output.parents if not parent.exists()}
    try:
        yield
    except BaseException:
        for output in outputs:
            if output.is_dir():
                shutil.rmtree(output)
        for parent in sorted(new_parents, key=lambda folder: len(folder.parts), reverse=True):
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise
