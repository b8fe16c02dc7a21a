"""Image sizes of a dataset checked against its scale at start, from the headers (or ``meta_info.txt``), the
training batch against the number of training images, and the validation and test images decoded once, before any
folder of the run is made.

BasicSR finds a training pair whose GT is not LQ x scale in iteration 1, after ``experiments/<name>`` exists, and
for a validation pair it crops the GT to LQ x scale and reports the PSNR of two images that do not correspond. A
batch larger than the images each process draws per epoch gives its loader (which drops an incomplete batch) no
batch at all: BasicSR then runs every epoch without an iteration and saves the untrained network, exit status 0.
"""

import math
from pathlib import Path

from ..data.continuous_scale_dataset import benchmark_sizes
from ..errors import ImageFileError, OptionError
from ..images import IMAGE_SUFFIXES, check_image_decodes, read_image_header

Sizes = dict[str, tuple[int, int]]
"""Image sizes ``(height, width)`` by file stem (folders) or key (LMDBs)."""


def _image_name(dataset: dict, root: str, name: str) -> str:
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    return f'{dataset[root]} key {name}' if backend == 'lmdb' else f'{Path(dataset[root]) / name}.*'


def check_pair_sizes(key: str, dataset: dict, sizes: dict[str, Sizes], scale: int, training: bool) -> None:
    """Refuse a ``PairedImageDataset`` pair whose LQ image is not its GT image divided by ``scale``.

    Training crops patches of both at the scale and needs GT = LQ x scale exactly (so every GT side divisible by
    it); validation and test crop the GT to LQ x scale and need LQ = GT // scale (the GT's modcrop).

    Args:
        key: ``datasets.<phase>``.
        dataset: The entry.
        sizes: Its sizes by root key (``dataroot_gt``, ``dataroot_lq``).
        scale: The option file's scale.
        training: The entry is a training set.

    Raises:
        OptionError: naming the first pair that breaks the relation, with both sizes.
    """
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    # BasicSR pairs LMDB entries by key and folder files by ``filename_tmpl`` (the stems' template).
    template = '{}' if backend == 'lmdb' else dataset.get('filename_tmpl', '{}')
    for name, (gt_h, gt_w) in sorted(sizes['dataroot_gt'].items()):
        lq_name = template.format(name)
        if lq_name not in sizes['dataroot_lq']:
            continue  # a missing partner is named by check_option_files
        lq_h, lq_w = sizes['dataroot_lq'][lq_name]
        expected = (gt_h // scale, gt_w // scale)
        fits = ((lq_h * scale, lq_w * scale) == (gt_h, gt_w)) if training else (lq_h, lq_w) == expected
        if fits:
            continue
        pair = (f'GT {_image_name(dataset, "dataroot_gt", name)} is {gt_h}x{gt_w} and LQ '
                f'{_image_name(dataset, "dataroot_lq", lq_name)} is {lq_h}x{lq_w} (HxW)')
        if training:
            raise OptionError(f'{key}: {pair}; training crops patches of both at scale {scale} and needs GT = LQ x '
                              f'{scale} ({lq_h * scale}x{lq_w * scale}), so every GT side must be divisible by '
                              f'{scale}; make the LQ images from the modcropped GT (oisr prepare-data).')
        raise OptionError(f'{key}: {pair}; at scale {scale} the LQ image must be {expected[0]}x{expected[1]} (the GT '
                          'cropped to a multiple of the scale, divided by it): BasicSR would crop the GT to LQ x scale '
                          'and score images that do not correspond.')


def samples_per_process(images: int, enlarge_ratio: int, world_size: int) -> int:
    """The images each process draws per epoch: BasicSR's ``EnlargedSampler`` spreads ``images`` x
    ``enlarge_ratio`` over ``world_size`` processes, rounding up."""
    return math.ceil(images * enlarge_ratio / world_size)


def check_batch_fits(key: str, dataset: dict, images: int, world_size: int) -> None:
    """Refuse a training batch larger than the images each process draws per epoch.

    Args:
        key: ``datasets.train``.
        dataset: The training entry, checked against the option schema.
        images: The number of training images (GT files or LMDB keys), as the dataset will list them.
        world_size: The number of training processes.

    Raises:
        OptionError: naming ``batch_size_per_gpu``, its value and the dataset's size.
    """
    batch, ratio = dataset['batch_size_per_gpu'], dataset.get('dataset_enlarge_ratio', 1)
    drawn = samples_per_process(images, ratio, world_size)
    if batch > drawn:
        processes = f'{world_size} process' + ('es' if world_size > 1 else '')
        raise OptionError(f'{key}.batch_size_per_gpu: {batch} is larger than the {drawn} images each process draws '
                          f'per epoch ({images} training images x dataset_enlarge_ratio {ratio} over {processes}); '
                          "BasicSR's loader drops an incomplete batch, so not one iteration would run; allowed: at "
                          f'most {drawn}.')


def check_gt_gives_pixels(key: str, dataset: dict, sizes: Sizes, scale: int | None) -> None:
    """Refuse a GT-only validation / test image too small to give one LR pixel at the dataset's scale.

    Args:
        key: ``datasets.<phase>``.
        dataset: A ``BenchmarkHRDataset`` or ``ContinuousScalePairedDataset`` entry (other types are not checked).
        sizes: Its GT sizes.
        scale: The option file's scale.

    Raises:
        OptionError: naming the smallest image and the scale.
    """
    name, (h, w) = min(sizes.items(), key=lambda item: min(item[1]))
    if dataset.get('type') == 'BenchmarkHRDataset' and isinstance(scale, int):
        multiple = dataset.get('modcrop', scale)
        too_small, why = min(h, w) < multiple, f'its crop to a multiple of {multiple} (modcrop) is empty'
    elif dataset.get('type') == 'ContinuousScalePairedDataset' and dataset.get('test_scale') is not None:
        scale = dataset['test_scale']
        too_small, why = min(benchmark_sizes(h, w, scale)[0]) < 1, 'its LR image has no pixel'
    else:
        return
    if too_small:
        raise OptionError(f'{key}: {_image_name(dataset, "dataroot_gt", name)} is {h}x{w} (HxW), too small for scale '
                          f'{scale:g}: {why}.')


def check_images_decode(key: str, folder: Path) -> None:
    """Decode every image of a validation or test folder once, refusing a truncated or corrupt one (OpenCV, which
    BasicSR reads with, fills a cut-off JPEG with gray and goes on). Training sets are too large to decode at start;
    their unreadable images are named when they are read.

    Args:
        key: The option key of the folder (``datasets.val.dataroot_lq``).
        folder: The folder, already checked to exist and hold images that fit in memory.

    Raises:
        OptionError: ``<key>: <file>: truncated or corrupt (...)``.
    """
    for file in sorted(folder.iterdir()):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                check_image_decodes(read_image_header(file))
            except ImageFileError as error:
                raise OptionError(f'{key}: {error}') from None
