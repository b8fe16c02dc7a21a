"""The images a dataset of an option file reads, checked at start from their headers (or an LMDB's
``meta_info.txt``): folders and LMDBs exist and hold images, no header announces a decompression bomb, paired LMDBs
share their keys, and ``gt_size`` fits the smallest GT image."""

import warnings
from pathlib import Path

from PIL import Image

from ..errors import OptionError
from ..images import IMAGE_SUFFIXES

# Larger images are refused from their headers before any is decoded: PIL's own decompression-bomb bound.
IMAGE_PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS
META_INFO_LINE = '<key>.<suffix> (<height>,<width>,<channels>) <compression level>'


def _lmdb_sizes(key: str, path: Path) -> dict[str, tuple[int, int]]:
    """Image sizes by key from an LMDB's ``meta_info.txt`` (lines ``key.png (h,w,c) level``)."""
    meta_info = path / 'meta_info.txt'
    if not meta_info.is_file():
        raise OptionError(f'{key}: {path} has no meta_info.txt; make the LMDB with oisr prepare-data or '
                          'basicsr.utils.lmdb_util.make_lmdb_from_imgs.')
    sizes = {}
    for number, line in enumerate(meta_info.read_text().splitlines(), start=1):
        if line.strip():
            try:
                name, shape = line.split(' ')[:2]
                h, w = shape.strip('()').split(',')[:2]
                sizes[name.split('.')[0]] = (int(h), int(w))
            except ValueError:
                raise OptionError(f'{key}: {meta_info}, line {number}: {line!r} is not {META_INFO_LINE}.') from None
    if not sizes:
        raise OptionError(f'{key}: {meta_info} lists no images.')
    return sizes


def _folder_sizes(key: str, path: Path) -> dict[str, tuple[int, int]]:
    """Image sizes by file stem, from the image headers alone."""
    if not path.is_dir():
        raise OptionError(f'{key}: folder {path} does not exist.')
    sizes = {}
    for file in sorted(path.iterdir()):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore', Image.DecompressionBombWarning)
                    with Image.open(file) as image:
                        sizes[file.stem] = (image.height, image.width)
            except Image.DecompressionBombError as error:  # twice PIL's limit: it refuses the header itself
                raise OptionError(f'{key}: {file} is refused from its header: {error}') from None
            except OSError as error:
                raise OptionError(f'{key}: {file} is not a readable image ({error}).') from None
            if sizes[file.stem][0] * sizes[file.stem][1] > IMAGE_PIXEL_LIMIT:
                raise OptionError(f'{key}: {file} announces {sizes[file.stem][0]}x{sizes[file.stem][1]} pixels in '
                                  f'its header, more than the limit of {IMAGE_PIXEL_LIMIT} (a decompression bomb?).')
    if not sizes:
        raise OptionError(f'{key}: folder {path} holds no images ({", ".join(IMAGE_SUFFIXES)}).')
    return sizes


def check_dataset_images(phase: str, dataset: dict) -> dict[str, dict[str, tuple[int, int]]]:
    """Check the images of ``datasets.<phase>``; their sizes, read from the headers (or ``meta_info.txt``), by root
    key (``dataroot_gt``, ``dataroot_lq``), then name.

    Args:
        phase: The entry's name (``train``, ``val_1``).
        dataset: The entry, checked against the option schema.
    """
    key = f'datasets.{phase}'
    backend = dataset.get('io_backend', {}).get('type', 'disk')
    sizes = {}
    for root in ('dataroot_gt', 'dataroot_lq'):
        if dataset.get(root) is None:
            continue
        path = Path(dataset[root])
        if backend == 'lmdb':
            if not path.is_dir():
                raise OptionError(f'{key}.{root}: LMDB {path} does not exist.')
            sizes[root] = _lmdb_sizes(f'{key}.{root}', path)
        elif backend == 'disk' and 'meta_info_file' not in dataset:
            sizes[root] = _folder_sizes(f'{key}.{root}', path)
    if dataset.get('type') != 'PairedImageDataset' or len(sizes) != 2:
        return sizes
    gt, lq = sizes['dataroot_gt'], sizes['dataroot_lq']
    if backend == 'lmdb' and gt.keys() != lq.keys():
        missing = sorted(gt.keys() ^ lq.keys())
        raise OptionError(f'{key}: the GT and LQ LMDBs hold different keys ({len(missing)} differ, e.g. '
                          f'{", ".join(missing[:5])}); paired LMDBs need the same key set.')
    gt_size = dataset.get('gt_size')
    if phase == 'train' and gt_size is not None:
        name, (h, w) = min(gt.items(), key=lambda item: min(item[1]))
        if min(h, w) < gt_size:
            raise OptionError(f'{key}.gt_size: {gt_size} is larger than the GT image {name} ({h}x{w}).')
    return sizes


def image_file(folder: Path, name: str) -> Path:
    """The file of a folder dataset's image ``name`` (the stem :func:`check_dataset_images` keys it by)."""
    return next(path for path in sorted(folder.iterdir())
                if path.stem == name and path.suffix.lower() in IMAGE_SUFFIXES)
