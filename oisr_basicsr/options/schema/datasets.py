"""The ``datasets`` entries: the data loader's keys, the typed keys of the datasets this package documents, and for
any other registered dataset the keys its module reads from its options (a dataset takes one options dict, not
arguments)."""

import ast
import functools
import inspect
import math
import os
from typing import Annotated, Any, Literal

from basicsr.utils.registry import DATASET_REGISTRY
from pydantic import BeforeValidator, Field, create_model, model_validator

from ...data.continuous_scale_dataset import SCALE_RANGE_STEP
from .base import Block
from .registered import registered
from .values import Bool, Float, Int, NonEmptyStr, NonNegativeFloat, NonNegativeInt, PositiveInt, rule_error, show


class IoBackendOptions(Block):
    """``datasets.<phase>.io_backend``: where images are read from."""

    type: Literal['disk', 'lmdb', 'memcached'] = 'disk'
    readonly: Bool = True
    lock: Bool = False
    readahead: Bool = False
    server_list_cfg: NonEmptyStr | None = None
    client_cfg: NonEmptyStr | None = None
    sys_path: NonEmptyStr | None = None


MAX_BATCH_SIZE = 2**20
"""Far above what any device holds: a larger batch is a typo (``1e10``), refused before the loader allocates it."""
WORKERS_PER_CPU = 4
MIN_WORKER_BOUND = 8
"""``num_worker_per_gpu`` may be up to WORKERS_PER_CPU x the CPUs this process may use, and at least this many (the
recipes' 6 workers start on a one- or two-core machine); more only fork processes until the machine gives up."""


def worker_bound() -> int:
    """The most data loader workers per GPU a run on this machine may ask for."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    return max(WORKERS_PER_CPU * cpus, MIN_WORKER_BOUND)


class DataLoaderOptions(Block):
    """Keys of every ``datasets.<phase>`` entry, read by BasicSR's data loader rather than the dataset."""

    name: str = Field(min_length=1)
    type: str
    phase: Literal['train', 'val', 'test'] | None = Field(None, description='set by BasicSR from the entry name')
    scale: Int | None = Field(None, description="set by BasicSR to the top-level scale; don't write it")
    batch_size_per_gpu: Annotated[Int, Field(gt=0, le=MAX_BATCH_SIZE)] | None = Field(
        None, description='required for train')
    num_worker_per_gpu: NonNegativeInt | None = Field(
        None, description=f'required for train; at most {WORKERS_PER_CPU} per CPU of the machine (at least '
                          f'{MIN_WORKER_BOUND} are allowed)')
    dataset_enlarge_ratio: PositiveInt = 1
    prefetch_mode: Literal['cpu', 'cuda'] | None = None
    num_prefetch_queue: PositiveInt = 1
    pin_memory: Bool = False
    persistent_workers: Bool = False

    @model_validator(mode='after')
    def _workers_fit_the_machine(self) -> 'DataLoaderOptions':
        bound = worker_bound()
        if self.num_worker_per_gpu is not None and self.num_worker_per_gpu > bound:
            raise rule_error(f'out of range; got {self.num_worker_per_gpu}; allowed: <= {bound} ({WORKERS_PER_CPU} '
                             f'per CPU of this machine, at least {MIN_WORKER_BOUND})', 'num_worker_per_gpu')
        return self


class PairedImageOptions(DataLoaderOptions):
    """BasicSR's ``PairedImageDataset`` (and ``SingleImageDataset`` without the GT keys)."""

    dataroot_gt: NonEmptyStr
    dataroot_lq: NonEmptyStr
    io_backend: IoBackendOptions
    meta_info_file: NonEmptyStr | None = None
    filename_tmpl: str = '{}'
    gt_size: PositiveInt | None = Field(None, description='required for train')
    use_hflip: Bool = False
    use_rot: Bool = False
    color: Literal['y'] | None = None
    mean: list[Float] | None = None
    std: list[Float] | None = None


class SingleImageOptions(DataLoaderOptions):
    """BasicSR's ``SingleImageDataset``: LR images alone."""

    dataroot_lq: NonEmptyStr
    io_backend: IoBackendOptions
    meta_info_file: NonEmptyStr | None = None
    color: Literal['y'] | None = None
    mean: list[Float] | None = None
    std: list[Float] | None = None


class ContinuousScaleOptions(DataLoaderOptions):
    """``ContinuousScalePairedDataset``: HR images, LR made at a real scale per sample (NODE-SR)."""

    dataroot_gt: NonEmptyStr
    io_backend: IoBackendOptions = IoBackendOptions()
    meta_info_file: NonEmptyStr | None = None
    gt_size: PositiveInt | None = Field(None, description='required for train')
    use_hflip: Bool = True
    use_rot: Bool = True
    scales: list[Annotated[Float, Field(gt=1)]] | None = Field(None, min_length=1)
    scale_range: list[Annotated[Float, Field(gt=1)]] | None = Field(None, min_length=2, max_length=2)
    test_scale: Annotated[Float, Field(gt=1)] | None = Field(
        None, description='required for val / test; t = 1 would be the HR image itself')

    @model_validator(mode='after')
    def _one_scale_range(self) -> 'ContinuousScaleOptions':
        if self.scales is not None and self.scale_range is not None:
            raise rule_error('given together with scales; give one of them', 'scale_range')
        if self.scale_range is not None:
            low, high = self.scale_range
            if low > high:
                raise rule_error(f'the low end {low:g} is above the high end {high:g}; allowed: [low, high] with '
                                 '1 < low <= high', 'scale_range')
            if math.ceil(low * SCALE_RANGE_STEP) > math.floor(high * SCALE_RANGE_STEP):
                raise rule_error(f'[{low:g}, {high:g}] holds no multiple of {1 / SCALE_RANGE_STEP:g}, the scales it '
                                 'draws', 'scale_range')
        return self


class BenchmarkHROptions(DataLoaderOptions):
    """``BenchmarkHRDataset``: a benchmark from its HR images, LR made by the papers' protocol."""

    dataroot_gt: NonEmptyStr
    io_backend: IoBackendOptions = IoBackendOptions()
    modcrop: PositiveInt | None = None
    protocol: Literal['rgb', 'matlab_y'] = 'rgb'


DATASET_OPTIONS: dict[str, type[DataLoaderOptions]] = {
    'PairedImageDataset': PairedImageOptions,
    'SingleImageDataset': SingleImageOptions,
    'ContinuousScalePairedDataset': ContinuousScaleOptions,
    'BenchmarkHRDataset': BenchmarkHROptions,
}
"""Typed keys of the datasets this package documents; any other registered dataset gets the keys its source
reads from its options (see :func:`_dataset_keys_from_source`), typed by :data:`DATASET_KEY_TYPES`."""

Probability = Annotated[Float, Field(ge=0, le=1)]
Range = Annotated[list[Float], Field(min_length=2, max_length=2)]
BLUR_KERNELS = Literal['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']

DATASET_KEY_TYPES: dict[str, object] = {
    'dataroot_gt': NonEmptyStr, 'dataroot_lq': NonEmptyStr, 'dataroot_flow': NonEmptyStr,
    'io_backend': IoBackendOptions, 'meta_info_file': NonEmptyStr, 'meta_info': NonEmptyStr,
    'filename_tmpl': str, 'gt_size': PositiveInt, 'use_hflip': Bool, 'use_rot': Bool,
    'mean': list[Float], 'std': list[Float], 'color': Literal['y'],
    # video datasets (REDS, Vimeo-90K and their test sets)
    'num_frame': PositiveInt, 'interval_list': list[PositiveInt], 'random_reverse': Bool, 'flip_sequence': Bool,
    'test_mode': Bool, 'val_partition': Literal['REDS4', 'official'], 'cache_data': Bool,
    'padding': Literal['replicate', 'reflection', 'reflection_circle', 'circle'], 'use_duf_downsampling': Bool,
    # Real-ESRGAN's synthetic degradations, first and second order
    **{f'{key}{order}': value for order in ('', '2') for key, value in {
        'blur_kernel_size': PositiveInt, 'kernel_list': list[BLUR_KERNELS], 'kernel_prob': list[NonNegativeFloat],
        'blur_sigma': Range, 'betag_range': Range, 'betap_range': Range, 'sinc_prob': Probability}.items()},
    'final_sinc_prob': Probability,
}
"""Types of the keys that BasicSR's other registered datasets read (their sources use them so); a key of a
third-party dataset missing here is accepted with any value, as its source alone knows what it means."""
TRAIN_ONLY_REQUIRED = ('batch_size_per_gpu', 'num_worker_per_gpu')


def _dataset_keys_from_source(dataset_class: type) -> list[str]:
    """The keys a dataset's module reads from its options: ``opt['key']``, ``opt.get('key')``, ``self.opt[...]``."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(dataset_class)))
    keys = set()

    def is_options(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == 'opt') or (isinstance(node, ast.Attribute)
                                                                       and node.attr == 'opt')

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_options(node.value) and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'get'
              and is_options(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            keys.add(node.args[0].value)
    return sorted(key for key in keys if isinstance(key, str))


@functools.cache
def dataset_block(dataset_type: str) -> type[Block]:
    """The block of a ``datasets`` entry of type ``dataset_type``: the data loader's keys and the dataset's."""
    base = DATASET_OPTIONS.get(dataset_type)
    if base is None:
        keys = [key for key in _dataset_keys_from_source(DATASET_REGISTRY.get(dataset_type))
                if key not in DataLoaderOptions.model_fields]
        return create_model(f'{dataset_type}Options', __base__=DataLoaderOptions,
                            **{key: (DATASET_KEY_TYPES.get(key, Any) | None, None) for key in keys})
    return create_model(base.__name__, __base__=base, __doc__=base.__doc__, type=(Literal[dataset_type], ...))


PHASES = ('train', 'val', 'test')


def _phase(phase: object) -> str:
    if not isinstance(phase, str) or phase.split('_')[0] not in PHASES:
        raise rule_error(f'not a dataset phase; got {show(phase)}; allowed: train, val, val_1, ... (training), '
                         'test_1, ... (testing)')
    return phase


Phase = Annotated[str, BeforeValidator(_phase)]
"""The name of a ``datasets`` entry: its phase, then ``_<anything>`` (``val_1``, ``test_2``)."""
Dataset = registered('dataset', lambda: [name for name, _ in DATASET_REGISTRY], dataset_block)
"""A ``datasets`` entry: ``type`` names a registered dataset."""
