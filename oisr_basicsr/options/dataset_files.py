"""The images a dataset of an option file reads, checked at start from their headers (or an LMDB's
``meta_info.txt``): folders and LMDBs exist and hold images, no header announces a decompression bomb, paired LMDBs
share their keys, ``gt_size`` fits the smallest GT image, paired images are in the scale and the training batch
fits the training set (:mod:`.dataset_sizes`)."""

from pathlib import Path

from PIL import Image

from ..errors import ImageFileError, OptionError
from ..images import IMAGE_SUFFIXES, read_image_header
from .dataset_sizes import check_gt_gives_pixels, check_pair_sizes
from .lmdb_files import read_meta_info

# Larger images are refused from their headers before any is decoded: PIL's own decompression-bomb bound.
IMAGE_PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS


def _folder_sizes(key: str, path: Path) -> dict[str, tuple[int, int]]:
    """Image sizes by file stem, from the image headers alone."""
    if not path.is_dir():
        raise OptionError(f'{key}: folder {path} does not exist.')
    sizes = {}
    for file in sorted(path.iterdir()):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                header = read_image_header(file)
            except ImageFileError as error:
                raise OptionError(f'{key}: {error}') from None
            if header.pixels > IMAGE_PIXEL_LIMIT:
                raise OptionError(f'{key}: {file} announces {header.height}x{header.width} pixels in its header, '
                                  f'more than the limit of {IMAGE_PIXEL_LIMIT} (a decompression bomb?).')
            sizes[file.stem] = (header.height, header.width)
    if not sizes:
        raise OptionError(f'{key}: folder {path} holds no images ({", ".join(IMAGE_SUFFIXES)}).')
    return sizes


def check_dataset_images(phase: str, dataset: dict, scale: int | None) -> dict[str, dict[str, tuple[int, int]]]:
    """Check the images of ``datasets.<phase>``; their sizes, read from the headers (or ``meta_info.txt``), by root
    key (``dataroot_gt``, ``dataroot_lq``), then name.

    Args:
        phase: The entry's name (``train``, ``val_1``).
        dataset: The entry, checked against the option schema.
        scale: The option file's top-level ``scale``, which paired images must be in.
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
            sizes[root] = read_meta_info(f'{key}.{root}', path)
        elif backend == 'disk' and 'meta_info_file' not in dataset:
            sizes[root] = _folder_sizes(f'{key}.{root}', path)
    if phase != 'train' and 'dataroot_gt' in sizes:
        check_gt_gives_pixels(key, dataset, sizes['dataroot_gt'], scale)
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
    if isinstance(scale, int):
        check_pair_sizes(key, dataset, sizes, scale, training=str(phase).startswith('train'))
    return sizes


def training_images(dataset: dict, sizes: dict[str, dict[str, tuple[int, int]]]) -> int | None:
    """The number of images a training dataset lists (its GT images or LMDB keys, else the lines of its
    ``meta_info_file``), or None for a dataset type that lists them its own way.

    Args:
        dataset: The training entry.
        sizes: What :func:`check_dataset_images` read of it.
    """
    if dataset.get('type') not in ('PairedImageDataset', 'ContinuousScalePairedDataset'):
        return None
    if 'dataroot_gt' in sizes:
        return len(sizes['dataroot_gt'])
    meta_info_file = Path(dataset.get('meta_info_file') or '')
    if not meta_info_file.is_file():
        return None  # named by check_option_files
    with meta_info_file.open(encoding='utf-8', errors='replace') as lines:
        return sum(1 for line in lines if line.strip())


def image_file(folder: Path, name: str) -> Path:
    """The file of a folder dataset's image ``name`` (the stem :func:`check_dataset_images` keys it by)."""
    return next(path for path in sorted(folder.iterdir())
                if path.stem == name and path.suffix.lower() in IMAGE_SUFFIXES)
