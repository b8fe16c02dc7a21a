"""Reading BasicSR option files safely, and the checks BasicSR itself leaves to a traceback later on.

Option files are read as plain data (:func:`read_option_file`): BasicSR's own reader is PyYAML's full
loader, which builds any Python object a file names. :func:`parse_options` is BasicSR's
``parse_options`` around that reader, with ``--force_yml`` parsed as data instead of passed to ``exec``.
The checks run once, right after the file is parsed, before any dataset, network or log folder is made.
"""

import argparse
import inspect
import os
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from PIL import Image

from ..cluster import restarted_by_launcher
from ..data.continuous_scale_dataset import benchmark_sizes
from ..errors import ImageFileError, OptionError
from ..images import IMAGE_SUFFIXES, read_image_header
from ..memory import check_result_fits, traced_forward_peak
from ..model_capabilities import reads_ode_block, serves_any_scale
from ..safeguards.resume import run_device
from .dataset_sizes import check_gt_gives_pixels, check_images_decode, check_pair_sizes
from .files import check_option_files
from .lmdb_files import read_meta_info

# Larger images are refused from their headers before any is decoded: PIL's own decompression-bomb bound.
IMAGE_PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS
# How registered architectures name their numbers of input and output channels (BasicSR, SwinIR, RIDNet).
INPUT_CHANNEL_KEYS = ('num_in_ch', 'in_chans', 'in_channels')
OUTPUT_CHANNEL_KEYS = ('num_out_ch', 'out_chans', 'out_channels')


# ----------------------------------------------------------------------------------------------------------------
# Reading option files

_YAML_TAG_PREFIX = 'tag:yaml.org,2002:'


class _RefusedTagError(yaml.YAMLError):
    def __init__(self, tag: str, mark: yaml.Mark | None):
        super().__init__(tag)
        self.tag = tag.replace(_YAML_TAG_PREFIX, '!!', 1) if tag.startswith(_YAML_TAG_PREFIX) else tag
        self.mark = mark


class _OptionFileLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """PyYAML's safe loader (YAML's standard tags only) with BasicSR's ordered mappings."""


def _construct_ordered_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    loader.flatten_mapping(node)  # YAML merge keys (<<), as the safe loader's own mappings allow
    return OrderedDict(loader.construct_pairs(node))


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    # Every tag without a safe constructor lands here: !!python/object/apply:..., !!python/name:..., !custom.
    raise _RefusedTagError(node.tag, node.start_mark)


_OptionFileLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
_OptionFileLoader.add_constructor(None, _refuse_tag)


def load_yaml_data(text: str, source: str) -> Any:
    """Parse YAML text as plain data: mappings (ordered), lists, strings, numbers, booleans, null, and
    YAML's other standard tags such as ``!!float``; nothing is constructed that could run code.

    Args:
        text: The YAML document.
        source: What to call it in an error (a file name, ``--force_yml ...``).

    Raises:
        OptionError: The text is not YAML, or holds a tag that would construct a Python object (naming
            the source, the line and the tag).
    """
    try:
        return yaml.load(text, Loader=_OptionFileLoader)
    except _RefusedTagError as error:
        line = f', line {error.mark.line + 1}' if error.mark is not None else ''
        raise OptionError(f'{source}{line}: the tag {error.tag} is refused; option files hold plain data only '
                          '(mappings, lists, strings, numbers, booleans, null), never Python objects.') from None
    except yaml.YAMLError as error:
        mark = getattr(error, 'problem_mark', None)
        line = f' (line {mark.line + 1})' if mark is not None else ''
        problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
        raise OptionError(f'{source} is not valid YAML{line}: {problem}.') from None


def read_option_file(path: str | os.PathLike) -> dict:
    """The options of a YAML file, read with :func:`load_yaml_data`: the one reader of every option file.

    Raises:
        OptionError: The file is missing, unreadable, not YAML, holds a refused tag, or is not a mapping.
    """
    try:
        text = Path(path).read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as error:
        reason = 'not found' if isinstance(error, FileNotFoundError) else f'cannot be read ({error})'
        raise OptionError(f'option file {path} {reason}.') from None
    opt = load_yaml_data(text, str(path))
    if not isinstance(opt, dict):
        raise OptionError(f'{path} holds no mapping of options (got {type(opt).__name__}).')
    return opt


def apply_forced_option(opt: dict, entry: str) -> None:
    """Apply one ``--force_yml`` entry, ``key:subkey=value``, to ``opt`` in place.

    The value is parsed as YAML data (``none`` and ``~`` are null, as in BasicSR); every key but the last
    must already exist, as BasicSR requires.

    Raises:
        OptionError: The entry has no ``=``, names a missing or non-mapping key, or its value is refused.
    """
    keys, separator, text = entry.partition('=')
    if not separator or not keys.strip():
        raise OptionError(f'--force_yml {entry!r}: expected key:subkey=value.')
    text = text.strip()
    value = None if text.lower() == 'none' else load_yaml_data(text, f'--force_yml {entry!r}')
    path = [key.strip() for key in keys.split(':')]
    target = opt
    for depth, key in enumerate(path[:-1]):
        target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise OptionError(f'--force_yml {entry!r}: {":".join(path[:depth + 1])} is not a mapping of the '
                              'option file.')
    target[path[-1]] = value


def check_folder_name(key: str, name: object) -> None:
    """Raise :class:`OptionError` unless ``name`` is a plain folder name, so that ``experiments/<name>``
    stays inside ``experiments/``: no path separator, not ``.`` or ``..``, no control characters."""
    if not isinstance(name, str) or not name:
        raise OptionError(f'{key}: must be a non-empty string (a folder name); got {name!r}.')
    separators = {'/', os.sep, os.altsep} - {None}
    if name in ('.', '..') or any(sep in name for sep in separators) or re.search(r'[\x00-\x1f\x7f]', name):
        raise OptionError(f'{key}: {name!r} is not a plain folder name; use letters, digits, "_", "-" or "." '
                          'without path separators (not "." or "..").')


def _required_mapping(opt: dict, key: str, source: str) -> dict:
    if not isinstance(opt.get(key), dict):
        raise OptionError(f'{source}: {key} must be a mapping; got {opt.get(key)!r}.')
    return opt[key]


def parse_options(root_path: str, is_train: bool, args: argparse.Namespace) -> tuple[dict, argparse.Namespace]:
    """BasicSR's ``parse_options`` (its options dict, from its command line), reading the file with
    :func:`read_option_file` and applying ``--force_yml`` with :func:`apply_forced_option`.

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training (``experiments/<name>``) or testing (``results/<name>``).
        args: BasicSR's command line, parsed (``oisr train`` / ``oisr test``'s parser,
            :mod:`oisr_cli.shared_arguments`): ``opt``, ``launcher``, ``auto_resume``, ``debug``, ``force_yml`` and
            ``verbose``.
    """
    from ..safeguards.distributed import init_dist
    from .schema import check_option_schema

    opt = read_option_file(args.opt)
    # Forced values before the seed and the checks: a forced manual_seed seeds the run, and the options as the
    # run will use them are checked against the schema before anything below indexes or rewrites them.
    for entry in args.force_yml or ():
        apply_forced_option(opt, entry)
    check_option_schema(opt, training=is_train)

    if args.launcher == 'none':
        opt['dist'] = False
        if args.verbose:  # BasicSR's console says it; the quiet one does not
            print('Disable distributed.', flush=True)
    else:
        opt['dist'] = True
        if args.launcher == 'slurm' and 'dist_params' in opt:
            init_dist(args.launcher, **opt['dist_params'])
        else:
            init_dist(args.launcher)
    opt['rank'], opt['world_size'] = get_dist_info()

    seed = opt.get('manual_seed')
    if seed is None:
        seed = random.randint(1, 10000)
        opt['manual_seed'] = seed
    set_random_seed(seed + opt['rank'])

    # A group that torchrun restarted, or a requeued SLURM job, resumes without the flag.
    opt['auto_resume'] = args.auto_resume or (opt['dist'] and restarted_by_launcher())
    opt['is_train'] = is_train
    check_folder_name('name', opt.get('name'))
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt.get('num_gpu') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()

    for phase, dataset in _required_mapping(opt, 'datasets', args.opt).items():
        # several datasets of one phase are named val_1, val_2, test_1, ...
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for root in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(root) is not None:
                dataset[root] = os.path.expanduser(dataset[root])
    path_opt = _required_mapping(opt, 'path', args.opt)
    for key, value in path_opt.items():
        if value is not None and ('resume_state' in key or 'pretrain_network' in key):
            path_opt[key] = os.path.expanduser(value)

    if is_train:
        experiments_root = os.path.join(root_path, 'experiments', opt['name'])
        path_opt.update(experiments_root=experiments_root, models=os.path.join(experiments_root, 'models'),
                        training_states=os.path.join(experiments_root, 'training_states'), log=experiments_root,
                        visualization=os.path.join(experiments_root, 'visualization'))
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = os.path.join(root_path, 'results', opt['name'])
        path_opt.update(results_root=results_root, log=results_root,
                        visualization=os.path.join(results_root, 'visualization'))
    return opt, args


# What parse_options changes, as BasicSR does, when the run's name contains 'debug'.
DEBUG_MODE_RULE = ("BasicSR's debug mode is on because the name {name!r} contains 'debug': validation and "
                   'checkpoints every 8 iterations, a log line every iteration, no tensorboard or wandb. '
                   'Choose a name without "debug" to train normally.')


def debug_mode_notice(opt: dict) -> str | None:
    """The announcement of BasicSR's debug mode for a training run whose name switches it on, else None."""
    if opt.get('is_train') and 'debug' in opt['name']:
        return DEBUG_MODE_RULE.format(name=opt['name'])
    return None


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


def _check_dataset(phase: str, dataset: dict, scale: int | None, check_files: bool) -> dict[str, dict]:
    """Check one dataset; the image sizes read from its headers (or ``meta_info.txt``), by root key, then stem."""
    key = f'datasets.{phase}'
    dataset_type = dataset.get('type')
    if dataset_type not in DATASET_REGISTRY:
        raise OptionError(f'{key}.type: {dataset_type!r} is not a registered dataset; known ones: '
                          f'{", ".join(sorted(name for name, _ in DATASET_REGISTRY))}.')
    gt_size = dataset.get('gt_size')
    if phase == 'train' and gt_size is not None and scale is not None and gt_size % scale:
        raise OptionError(f'{key}.gt_size: {gt_size} is not divisible by scale {scale}.')
    if not check_files:
        return {}
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
    if dataset_type != 'PairedImageDataset' or len(sizes) != 2:
        return sizes
    gt, lq = sizes['dataroot_gt'], sizes['dataroot_lq']
    if backend == 'lmdb' and gt.keys() != lq.keys():
        missing = sorted(gt.keys() ^ lq.keys())
        raise OptionError(f'{key}: the GT and LQ LMDBs hold different keys ({len(missing)} differ, e.g. '
                          f'{", ".join(missing[:5])}); paired LMDBs need the same key set.')
    if phase == 'train' and gt_size is not None:
        name, (h, w) = min(gt.items(), key=lambda item: min(item[1]))
        if min(h, w) < gt_size:
            raise OptionError(f'{key}.gt_size: {gt_size} is larger than the GT image {name} ({h}x{w}).')
    if isinstance(scale, int):
        check_pair_sizes(key, dataset, sizes, scale, training=str(phase).startswith('train'))
    return sizes


def _channels(network_opt: dict, keys: Sequence[str]) -> int | None:
    """The number of input (:data:`INPUT_CHANNEL_KEYS`) or output (:data:`OUTPUT_CHANNEL_KEYS`) channels
    ``network_opt`` builds with, or None for a channel-agnostic network."""
    parameters = inspect.signature(ARCH_REGISTRY.get(network_opt['type'])).parameters
    for key in keys:
        if key in network_opt:
            return network_opt[key]
        if key in parameters:
            return parameters[key].default
    return None


def _check_y_protocol(phase: str, dataset: dict, network_opt: dict | None) -> None:
    """A ``protocol: matlab_y`` benchmark gives one-channel images; refuse it for a network that reads three."""
    if dataset.get('protocol') != 'matlab_y' or network_opt is None:
        return
    channels = _channels(network_opt, INPUT_CHANNEL_KEYS)
    if channels not in (None, 1):
        raise OptionError(f'datasets.{phase}.protocol: matlab_y gives single-channel Y images, but network_g '
                          f'({network_opt["type"]}) reads {channels} channels; use protocol: rgb for it.')


def _largest_result(dataset: dict, sizes: dict[str, dict], scale: int | None
                    ) -> tuple[str, str, tuple[int, int], tuple[int, int]] | None:
    """The image of a validation / test dataset with the largest result: its root key, its name, the network's
    input size and the result's size (``(H, W)`` each), as the dataset makes them; None where they are not known."""
    def pixels(item: tuple[str, tuple[int, int]]) -> int:
        return item[1][0] * item[1][1]

    if 'dataroot_lq' in sizes:
        if not isinstance(scale, int):
            return None
        name, (h, w) = max(sizes['dataroot_lq'].items(), key=pixels)
        return 'dataroot_lq', name, (h, w), (h * scale, w * scale)
    if 'dataroot_gt' not in sizes:
        return None
    name, (h, w) = max(sizes['dataroot_gt'].items(), key=pixels)
    if dataset.get('type') == 'BenchmarkHRDataset' and isinstance(scale, int):
        multiple = dataset.get('modcrop', scale)
        h, w = h - h % multiple, w - w % multiple  # its modcrop
        return 'dataroot_gt', name, (h // scale, w // scale), (h, w)
    if dataset.get('type') == 'ContinuousScalePairedDataset' and dataset.get('test_scale') is not None:
        lr_size, _, reference = benchmark_sizes(h, w, dataset['test_scale'])
        return 'dataroot_gt', name, lr_size, reference
    return None


def _image_file(folder: Path, name: str) -> Path:
    """The file of a folder dataset's image ``name`` (the stem :func:`_folder_sizes` keys it by)."""
    return next(path for path in sorted(folder.iterdir())
                if path.stem == name and path.suffix.lower() in IMAGE_SUFFIXES)


def _traced_test_peak(opt: dict, input_shape: tuple[int, int, int, int]) -> int | None:
    """The traced peak of ``network_g``'s no-grad forward, as SRModel's ``test`` runs it; None for a model that serves
    any scale (NODE-SR: its test runs a solver, which is not traced) and under autocast (a float32 trace would overstate
    it)."""
    network_opt = opt.get('network_g')
    precision = (opt.get('acceleration') or {}).get('precision', 'fp32')
    if not isinstance(network_opt, dict) or serves_any_scale(opt) or precision != 'fp32':
        return None
    arch = ARCH_REGISTRY.get(network_opt['type'])
    kwargs = {name: value for name, value in network_opt.items() if name != 'type'}
    return traced_forward_peak(lambda: arch(**kwargs).eval(), input_shape)


@dataclass(frozen=True)
class ResultEstimate:
    """The largest result of a validation / test dataset and the memory it needs.

    Args:
        image: The image (``Set5/HR/baby.png``, or an LMDB and its key).
        output_hw: The result's height and width.
        memory: The estimate in bytes per memory (:func:`~oisr_basicsr.memory.check_result_fits`).
    """

    image: str
    output_hw: tuple[int, int]
    memory: dict[torch.device, int]


@dataclass(frozen=True)
class CheckedDataset:
    """What the start-up checks read of one dataset (``oisr check`` prints it).

    Args:
        type: The dataset's ``type``.
        sizes: Image sizes ``(H, W)`` by name, per root key (``dataroot_gt``, ``dataroot_lq``), from the image
            headers or ``meta_info.txt``; empty where the files are not read this way (``meta_info_file``).
        largest_result: For a validation or test dataset whose sizes are known, its largest result.
    """

    type: str
    sizes: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    largest_result: ResultEstimate | None = None


def _check_results_fit(opt: dict, phase: str, dataset: dict, sizes: dict[str, dict]) -> ResultEstimate | None:
    """Refuse a validation / test dataset whose largest result cannot fit in the memory of the run's device; the
    estimate of that result, or None where the dataset's sizes do not tell it."""
    largest = _largest_result(dataset, sizes, opt.get('scale'))
    if largest is None:
        return None
    root, name, input_hw, output_hw = largest
    network_opt = opt.get('network_g') if isinstance(opt.get('network_g'), dict) else None
    # A matlab_y benchmark gives one-channel images; a channel-agnostic network (None) returns what it is given.
    in_channels = (1 if dataset.get('protocol') == 'matlab_y'
                   else (network_opt and _channels(network_opt, INPUT_CHANNEL_KEYS)) or 3)
    out_channels = (network_opt and _channels(network_opt, OUTPUT_CHANNEL_KEYS)) or in_channels
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    image = (f'{dataset[root]} key {name}' if backend == 'lmdb' else _image_file(Path(dataset[root]), name))
    scale = dataset.get('test_scale') if dataset.get('type') == 'ContinuousScalePairedDataset' else opt['scale']
    memory = check_result_fits(f'datasets.{phase}: {image}', scale, output_hw, out_channels, run_device(opt),
                               _traced_test_peak(opt, (1, in_channels, *input_hw)),
                               'test on smaller images or on a device with more memory')
    return ResultEstimate(str(image), output_hw, memory)


def _reads_acceleration(model_class: type) -> bool:
    # A class attribute rather than issubclass(AcceleratedSRModel), so that option checking never imports a model.
    return getattr(model_class, 'reads_acceleration_block', False)


def _check_model(opt: dict) -> None:
    from .blocks import parse_acceleration_options, parse_ode_options

    model_type = opt['model_type']
    if model_type not in MODEL_REGISTRY:
        raise OptionError(f'model_type: {model_type!r} is not a registered model; known ones: '
                          f'{", ".join(sorted(name for name, _ in MODEL_REGISTRY))}.')
    model_class = MODEL_REGISTRY.get(model_type)
    accelerated = [name for name, cls in MODEL_REGISTRY if _reads_acceleration(cls)]
    if 'acceleration' in opt and not _reads_acceleration(model_class):
        # Ignoring it would train in fp32 while the option file says otherwise.
        raise OptionError(f'acceleration: model_type {model_type} does not read it; use one of '
                          f'{", ".join(sorted(accelerated))}.')
    try:
        if _reads_acceleration(model_class):
            parse_acceleration_options(opt.get('acceleration'))
        if reads_ode_block(opt):
            parse_ode_options(opt.get('ode'))
    except ValueError as error:
        raise OptionError(str(error)) from None


def validate_options(opt: dict, check_files: bool = True, check_schema: bool = True) -> dict[str, CheckedDataset]:
    """Raise :class:`OptionError`, naming the key, for an option dict that cannot run; else what was read of each
    dataset, by phase.

    Args:
        opt: Options as parsed by BasicSR.
        check_files: Also check the data: folders and LMDBs exist and hold images, paired LMDBs share their
            keys, and ``gt_size`` fits the smallest GT image (read from image headers or ``meta_info.txt``);
            and the checkpoints, LMDB entries and output folders of
            :func:`~oisr_basicsr.options.files.check_option_files`.
        check_schema: First of all, check the whole dict against the option schema
            (:func:`~oisr_basicsr.options.schema.check_option_schema`); False where :func:`parse_options` has
            already checked the file.
    """
    from .schema import check_option_schema

    if check_schema:
        check_option_schema(opt)
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            check_network(key, value, opt.get('scale'))
    _check_model(opt)
    checked = {}
    for phase, dataset in opt['datasets'].items():
        sizes = _check_dataset(phase, dataset, opt.get('scale'), check_files)
        _check_y_protocol(phase, dataset, opt.get('network_g'))
        largest = None
        if not str(phase).startswith('train'):
            largest = _check_results_fit(opt, phase, dataset, sizes)
            if check_files and (dataset.get('io_backend') or {}).get('type', 'disk') == 'disk':
                for root in sizes:  # the folders whose headers were read, now known to fit in memory
                    check_images_decode(f'datasets.{phase}.{root}', Path(dataset[root]))
        checked[phase] = CheckedDataset(dataset['type'], sizes, largest)
    if check_files:
        check_option_files(opt)
    return checked


def start_up_checks(root_path: str, is_train: bool, args: argparse.Namespace
                    ) -> tuple[dict, argparse.Namespace, dict[str, CheckedDataset]]:
    """Every check a run makes at start before it takes its lock, creating nothing (no folder, log or lock file):
    :func:`parse_options` then :func:`validate_options`. A run then locks its folders
    (:func:`parse_and_validate_options`); ``oisr check`` asks whether another run holds them instead.

    Args:
        root_path, is_train, args: As for :func:`parse_options`.

    Returns:
        The options, the command line and what was read of each dataset (:func:`validate_options`).
    """
    opt, args = parse_options(root_path, is_train, args)
    checked = validate_options(opt, check_schema=False)  # parse_options checked the file against the schema
    return opt, args, checked


def parse_and_validate_options(root_path: str, is_train: bool, args: argparse.Namespace,
                               hold: ExitStack | None = None) -> tuple[dict, argparse.Namespace]:
    """:func:`start_up_checks`, then the run's lock on its folders.

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training or testing.
        args: The parsed command line, as for :func:`parse_options`.
        hold: Where the run lock is kept until the run ends (see :func:`~oisr_basicsr.run_lock.lock_run_folders`);
            None keeps it until the process exits.
    """
    from ..run_lock import lock_run_folders

    opt, args, _ = start_up_checks(root_path, is_train, args)
    lock_run_folders(opt, hold)
    return opt, args
