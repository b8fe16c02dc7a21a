"""Checks of a parsed BasicSR option dict that BasicSR itself leaves to a traceback later on.

They run once, right after BasicSR has parsed the YAML file, before any
dataset, network or log folder is made.
"""

import inspect
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from basicsr.utils.options import parse_options
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from PIL import Image

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
# Larger images are refused from their headers before any is decoded: PIL's own decompression-bomb bound.
IMAGE_PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS
# How registered architectures name their number of input channels (BasicSR, SwinIR, RIDNet).
INPUT_CHANNEL_KEYS = ('num_in_ch', 'in_chans', 'in_channels')


class OptionError(ValueError):
    """An option file holds a key or value this package cannot run with."""


def check_block(name: str, block: object, keys: tuple[str, ...]) -> Mapping:
    """An option block such as ``ode:`` as a mapping (``{}`` for None, i.e. all defaults).

    Raises:
        ValueError: if it is not a mapping, or naming its first key that is not in ``keys``.
    """
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ValueError(f'{name}: must be a mapping with keys {", ".join(keys)}; got {block!r}.')
    unknown = [key for key in block if key not in keys]
    if unknown:
        raise ValueError(f'{name}.{unknown[0]} is not an option; the keys are: {", ".join(keys)}.')
    return block


def check_network(key: str, network_opt: dict, scale: int | None) -> None:
    """Raise :class:`OptionError` unless ``network_opt`` builds a registered architecture at ``scale``."""
    if 'type' not in network_opt:
        raise OptionError(f'{key}.type is missing; name a registered architecture such as OISR.')
    arch_type = network_opt['type']
    if arch_type not in ARCH_REGISTRY:
        raise OptionError(f'{key}.type: {arch_type!r} is not a registered architecture; known ones: '
                          f'{", ".join(sorted(name for name, _ in ARCH_REGISTRY))}.')
    arch = ARCH_REGISTRY.get(arch_type)
    kwargs = {k: v for k, v in network_opt.items() if k != 'type'}
    signature = inspect.signature(arch)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        allowed = ', '.join(signature.parameters)
        raise OptionError(f'{key} ({arch_type}): {error}; its keys are: {allowed}.') from None
    error = _construction_error(arch_type, kwargs)
    if error is not None:
        raise OptionError(f'{key} ({arch_type}): {error}')
    upscale = network_opt.get('upscale')
    if scale is not None and upscale is not None and upscale != scale:
        raise OptionError(f'{key}.upscale is {upscale} but scale is {scale}; they must be equal.')


_construction_errors: dict[tuple[str, str], str | None] = {}


def _construction_error(arch_type: str, kwargs: dict) -> str | None:
    """Why ``arch_type`` cannot be built with ``kwargs``, or None; remembered, as building a large network takes
    a noticeable fraction of a second even on the meta device."""
    key = (arch_type, repr(sorted(kwargs.items())))
    if key not in _construction_errors:
        try:
            # On the meta device the constructor's own checks run without allocating a single weight.
            with torch.device('meta'):
                ARCH_REGISTRY.get(arch_type)(**kwargs)
            _construction_errors[key] = None
        except (ValueError, TypeError) as error:
            _construction_errors[key] = str(error)
    return _construction_errors[key]


def _lmdb_sizes(key: str, path: Path) -> dict[str, tuple[int, int]]:
    """Image sizes by key from an LMDB's ``meta_info.txt`` (lines ``key.png (h,w,c) level``)."""
    meta_info = path / 'meta_info.txt'
    if not meta_info.is_file():
        raise OptionError(f'{key}: {path} has no meta_info.txt; make the LMDB with scripts/prepare_data.py or '
                          'basicsr.utils.lmdb_util.make_lmdb_from_imgs.')
    sizes = {}
    for line in meta_info.read_text().splitlines():
        if line.strip():
            name, shape = line.split(' ')[:2]
            h, w = shape.strip('()').split(',')[:2]
            sizes[name.split('.')[0]] = (int(h), int(w))
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


def _check_dataset(phase: str, dataset: dict, scale: int | None, check_files: bool) -> None:
    key = f'datasets.{phase}'
    dataset_type = dataset.get('type')
    if dataset_type not in DATASET_REGISTRY:
        raise OptionError(f'{key}.type: {dataset_type!r} is not a registered dataset; known ones: '
                          f'{", ".join(sorted(name for name, _ in DATASET_REGISTRY))}.')
    gt_size = dataset.get('gt_size')
    if phase == 'train' and gt_size is not None and scale is not None and gt_size % scale:
        raise OptionError(f'{key}.gt_size: {gt_size} is not divisible by scale {scale}.')
    if not check_files:
        return
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
    if dataset_type != 'PairedImageDataset' or len(sizes) != 2:
        return
    gt, lq = sizes['dataroot_gt'], sizes['dataroot_lq']
    if backend == 'lmdb' and gt.keys() != lq.keys():
        missing = sorted(gt.keys() ^ lq.keys())
        raise OptionError(f'{key}: the GT and LQ LMDBs hold different keys ({len(missing)} differ, e.g. '
                          f'{", ".join(missing[:5])}); paired LMDBs need the same key set.')
    if phase == 'train' and gt_size is not None:
        name, (h, w) = min(gt.items(), key=lambda item: min(item[1]))
        if min(h, w) < gt_size:
            raise OptionError(f'{key}.gt_size: {gt_size} is larger than the GT image {name} ({h}x{w}).')


def _input_channels(network_opt: dict) -> int | None:
    """The number of input channels ``network_opt`` builds with, or None for a channel-agnostic network."""
    parameters = inspect.signature(ARCH_REGISTRY.get(network_opt['type'])).parameters
    for key in INPUT_CHANNEL_KEYS:
        if key in network_opt:
            return network_opt[key]
        if key in parameters:
            return parameters[key].default
    return None


def _check_y_protocol(phase: str, dataset: dict, network_opt: dict | None) -> None:
    """A ``protocol: matlab_y`` benchmark gives one-channel images; refuse it for a network that reads three."""
    if dataset.get('protocol') != 'matlab_y' or network_opt is None:
        return
    channels = _input_channels(network_opt)
    if channels not in (None, 1):
        raise OptionError(f'datasets.{phase}.protocol: matlab_y gives single-channel Y images, but network_g '
                          f'({network_opt["type"]}) reads {channels} channels; use protocol: rgb for it.')


def _check_model(opt: dict) -> None:
    from .models.accelerated_sr_model import AcceleratedSRModel, parse_acceleration_options
    from .models.node_solver import parse_ode_options

    model_type = opt['model_type']
    if model_type not in MODEL_REGISTRY:
        raise OptionError(f'model_type: {model_type!r} is not a registered model; known ones: '
                          f'{", ".join(sorted(name for name, _ in MODEL_REGISTRY))}.')
    model_class = MODEL_REGISTRY.get(model_type)
    accelerated = [name for name, cls in MODEL_REGISTRY if issubclass(cls, AcceleratedSRModel)]
    if 'acceleration' in opt and not issubclass(model_class, AcceleratedSRModel):
        # Ignoring it would train in fp32 while the option file says otherwise.
        raise OptionError(f'acceleration: model_type {model_type} does not read it; use one of '
                          f'{", ".join(sorted(accelerated))}.')
    try:
        if issubclass(model_class, AcceleratedSRModel):
            parse_acceleration_options(opt.get('acceleration'))
        if model_type == 'NODESRModel':
            parse_ode_options(opt.get('ode'))
    except ValueError as error:
        raise OptionError(str(error)) from None


def validate_options(opt: dict, check_files: bool = True) -> None:
    """Raise :class:`OptionError`, naming the key, for an option dict that cannot run.

    Args:
        opt: Options as parsed by BasicSR.
        check_files: Also check the data: folders and LMDBs exist and hold images, paired LMDBs share their
            keys, and ``gt_size`` fits the smallest GT image (read from image headers or ``meta_info.txt``);
            and the checkpoints, LMDB entries and output folders of
            :func:`~oisr_basicsr.option_file_checks.check_option_files`.

    First of all, the whole dict is checked against the option schema
    (:func:`~oisr_basicsr.option_schema.check_option_schema`).
    """
    from .option_schema import check_option_schema

    check_option_schema(opt)
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            check_network(key, value, opt.get('scale'))
    _check_model(opt)
    for phase, dataset in opt['datasets'].items():
        _check_dataset(phase, dataset, opt.get('scale'), check_files)
        _check_y_protocol(phase, dataset, opt.get('network_g'))
    if check_files:
        from .option_file_checks import check_option_files

        check_option_files(opt)


def parse_and_validate_options(root_path: str, is_train: bool = True) -> tuple[dict, object]:
    """BasicSR's ``parse_options`` followed by :func:`validate_options`."""
    from .option_schema import check_option_file_argument

    check_option_file_argument(training=is_train)
    opt, args = parse_options(root_path, is_train=is_train)
    validate_options(opt)
    return opt, args


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn the package's own errors about options, losses and checkpoints into ``error: ...`` and exit status 2.

    They say what is wrong and what to do; a traceback into BasicSR would only bury that.
    """
    from .compat import NonFiniteLossError
    from .utils.checkpoint_io import UnsafeCheckpointError

    try:
        yield
    except (OptionError, NonFiniteLossError, UnsafeCheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
