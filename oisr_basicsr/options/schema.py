"""One typed schema for a whole BasicSR option file, checked before anything is built.

BasicSR reads its YAML loosely: a misspelt key is ignored, ``lr: 1e-4`` is a string under YAML 1.1, and a wrong
type surfaces as a traceback hours later. Every block is a pydantic model here (pydantic v2: typed models, the
exact location of every error, and a JSON schema from which ``docs/options.md`` is generated). The blocks whose
``type`` names a registered class (networks, datasets, losses, metrics, optimisers, schedulers) get their keys
from that class itself: its ``__init__`` signature and type hints, so any BasicSR or plugin architecture is
checked without a hand-kept list; a dataset, which takes one options dict, from the keys its module reads.

:func:`check_option_schema` raises :class:`~oisr_basicsr.options.OptionError` with one line,
``<dotted.key>: <what is wrong>; got <value>; allowed: <...>``.
"""

import ast
import difflib
import functools
import inspect
import math
import operator
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import torch
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..data.continuous_scale_dataset import DEFAULT_SCALES
from ..errors import OptionError
from .blocks import COMPILE_MODES, GRADIENT_MODES, PRECISIONS, SOLVERS

# ---------------------------------------------------------------------------------------------------------------
# Value types

_noticed: set[tuple[str, str]] = set()


def _notice_number_string(key: str, text: str, number: float) -> None:
    """Say once per key and text that a YAML 1.1 string was read as a number."""
    if (key, text) not in _noticed:
        _noticed.add((key, text))
        print(f'note: {key}: {text!r} is read as the number {number:g} (YAML 1.1 reads a number without a dot, '
              f'such as 1e-4, as a string; write 1.0e-4 to silence this)', file=sys.stderr)


def _number(value: object, info: ValidationInfo, integer: bool) -> object:
    kind, what = ('not_an_integer', 'an integer') if integer else ('not_a_number', 'a number')
    if isinstance(value, bool):
        raise PydanticCustomError(kind, f'a boolean is not {what}')
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise PydanticCustomError(kind, f'not {what}') from None
        _notice_number_string(info.field_name or '?', value, number)
        value = number
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(kind, 'not a finite number')
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError('not_an_integer', 'not an integer')
        value = int(value)
    return value


def _integer(value: object, info: ValidationInfo) -> object:
    return _number(value, info, integer=True)


def _float(value: object, info: ValidationInfo) -> object:
    return _number(value, info, integer=False)


Int = Annotated[int, BeforeValidator(_integer)]
"""An integer; ``5e3`` (a string under YAML 1.1) and ``!!float 5e3`` are taken when integral, a boolean is not."""
Float = Annotated[float, BeforeValidator(_float)]
"""A number; ``1e-4`` (a string under YAML 1.1) is taken with a one-time notice, a boolean is not."""
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Bool = Annotated[bool, Field(strict=True)]
"""A YAML boolean (true / false); the string 'false' is refused, not read as True."""
NonEmptyStr = Annotated[str, Field(min_length=1)]


CropBorder = NonNegativeInt | Literal['scale']
"""Pixels shaved before a metric; ``scale`` shaves ceil(t) under NODESRModel."""

# ---------------------------------------------------------------------------------------------------------------
# Blocks


class Block(BaseModel):
    """A mapping of an option file whose keys are all known; an unknown key is refused with the nearest one."""

    model_config = ConfigDict(extra='ignore')
    open_keys: ClassVar[bool] = False
    """Set for a registered class whose ``__init__`` takes ``**kwargs``: any key may be meant for it."""
    key_patterns: ClassVar[tuple[str, ...]] = ()
    """Prefixes of keys checked elsewhere (``network_*``, ``optim_*``) and so allowed here."""

    @model_validator(mode='before')
    @classmethod
    def _refuse_unknown_keys(cls, data: object) -> object:
        if cls.open_keys or not isinstance(data, Mapping):
            return data
        known = [field.alias or name for name, field in cls.model_fields.items()]
        for key in data:
            if key in known or (isinstance(key, str) and key.startswith(cls.key_patterns or ('\0', ))):
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f'did you mean {close[0]}?' if close else f'allowed: {", ".join(known)}'
            raise PydanticCustomError('unknown_key', 'unknown key; {hint}', {'key': key, 'hint': hint})
        return data


class IoBackendOptions(Block):
    """``datasets.<phase>.io_backend``: where images are read from."""

    type: Literal['disk', 'lmdb', 'memcached'] = 'disk'
    readonly: Bool = True
    lock: Bool = False
    readahead: Bool = False
    server_list_cfg: NonEmptyStr | None = None
    client_cfg: NonEmptyStr | None = None
    sys_path: NonEmptyStr | None = None


class DataLoaderOptions(Block):
    """Keys of every ``datasets.<phase>`` entry, read by BasicSR's data loader rather than the dataset."""

    name: str = Field(min_length=1)
    type: str
    phase: Literal['train', 'val', 'test'] | None = Field(None, description='set by BasicSR from the entry name')
    scale: Int | None = Field(None, description="set by BasicSR to the top-level scale; don't write it")
    batch_size_per_gpu: PositiveInt | None = Field(None, description='required for train')
    num_worker_per_gpu: NonNegativeInt | None = Field(None, description='required for train')
    dataset_enlarge_ratio: PositiveInt = 1
    prefetch_mode: Literal['cpu', 'cuda'] | None = None
    num_prefetch_queue: PositiveInt = 1
    pin_memory: Bool = False
    persistent_workers: Bool = False


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


class PathOptions(Block):
    """``path``: checkpoints to start from and, set by BasicSR, the output folders."""

    pretrain_network_g: NonEmptyStr | None = None
    param_key_g: str | None = 'params'
    strict_load_g: Bool = True
    pretrain_network_d: NonEmptyStr | None = None
    param_key_d: str | None = 'params'
    strict_load_d: Bool = True
    resume_state: NonEmptyStr | None = None
    trust_checkpoints: Bool = Field(False, description='load pickled checkpoints with code; only for own files')
    experiments_root: str | None = Field(None, description='set by BasicSR')
    models: str | None = Field(None, description='set by BasicSR')
    training_states: str | None = Field(None, description='set by BasicSR')
    log: str | None = Field(None, description='set by BasicSR')
    visualization: str | None = Field(None, description='set by BasicSR')
    results_root: str | None = Field(None, description='set by BasicSR')


class TrainOptions(Block):
    """``train``: iterations, EMA, warm-up; ``optim_*``, ``scheduler`` and the ``*_opt`` losses are typed blocks."""

    key_patterns: ClassVar[tuple[str, ...]] = ('optim_', )
    total_iter: PositiveInt | None = Field(None, description='required for training')
    warmup_iter: Annotated[Int, Field(ge=-1)] = -1
    ema_decay: Annotated[Float, Field(ge=0, lt=1)] = 0
    scheduler: dict[str, Any] | None = None
    pixel_opt: dict[str, Any] | None = None
    perceptual_opt: dict[str, Any] | None = None
    gan_opt: dict[str, Any] | None = None
    net_d_iters: PositiveInt = 1
    net_d_init_iters: NonNegativeInt = 0


class ValOptions(Block):
    """``val``: how often and how to validate; ``metrics.<name>`` are typed blocks."""

    val_freq: PositiveInt | None = Field(None, description='required for training')
    save_img: Bool = False
    suffix: str | None = None
    pbar: Bool = False
    metrics: dict[str, dict[str, Any]] | None = None


class WandbOptions(Block):
    project: str | None = None
    resume_id: str | None = None


class LoggerOptions(Block):
    """``logger``: logging, tensorboard and checkpoint frequency and format."""

    print_freq: PositiveInt | None = Field(None, description='required for training')
    save_checkpoint_freq: PositiveInt | None = Field(None, description='required for training')
    use_tb_logger: Bool = False
    wandb: WandbOptions | None = None
    checkpoint_format: Literal['pth', 'safetensors'] = 'pth'


class DistParamsOptions(Block):
    """``dist_params``: read by the SLURM launcher."""

    backend: Literal['nccl', 'gloo'] = 'nccl'
    port: Annotated[Int, Field(ge=1, le=65535)] | None = None


_REQUIRED = 'required by train and test'
RUN_REQUIRED = ('name', 'model_type', 'num_gpu', 'datasets', 'path')
"""Top-level keys BasicSR's train and test pipelines cannot start without (tools need only ``network_g``)."""


class OptionFile(Block):
    """The whole option file (top level)."""

    key_patterns: ClassVar[tuple[str, ...]] = ('network_', )
    name: NonEmptyStr | None = Field(None, description=_REQUIRED)
    model_type: str | None = Field(None, description=_REQUIRED)
    scale: PositiveInt | None = None
    num_gpu: NonNegativeInt | Literal['auto'] | None = Field(None, description=_REQUIRED)
    manual_seed: NonNegativeInt | None = None
    find_unused_parameters: Bool = False
    datasets: dict[str, dict[str, Any]] | None = Field(None, description=_REQUIRED)
    path: PathOptions | None = Field(None, description=_REQUIRED)
    network_g: dict[str, Any] | None = Field(None, description='the network: `type` and its arguments; '
                                             'other `network_*` keys likewise')
    train: TrainOptions | None = None
    val: ValOptions | None = None
    logger: LoggerOptions | None = None
    dist_params: DistParamsOptions | None = None
    ode: dict[str, Any] | None = Field(None, description='NODESRModel: the ODE solver')
    acceleration: dict[str, Any] | None = Field(None, description='AcceleratedSRModel, NODESRModel: fast paths')
    dist: Bool | None = Field(None, description='set by BasicSR')
    rank: NonNegativeInt | None = Field(None, description='set by BasicSR')
    world_size: PositiveInt | None = Field(None, description='set by BasicSR')
    auto_resume: Bool | None = Field(None, description='set by BasicSR')
    is_train: Bool | None = Field(None, description='set by BasicSR')
    root_path: str | None = Field(None, description='set by BasicSR')


@functools.cache
def ode_block() -> type[Block]:
    return create_model('ODEBlock', __base__=Block, __doc__='``ode``: how NODESRModel solves the ODE.',
                        solver=(Literal[SOLVERS], 'rk4'), num_steps=(PositiveInt | None, None),
                        step_size=(PositiveFloat | None, None), rtol=(PositiveFloat, 1e-3),
                        atol=(PositiveFloat, 1e-4), gradient=(Literal[GRADIENT_MODES], 'backprop'))


@functools.cache
def acceleration_block() -> type[Block]:
    return create_model('AccelerationBlock', __base__=Block,
                        __doc__='``acceleration``: autocast, memory format and compilation of the networks.',
                        precision=(Literal[tuple(PRECISIONS)], 'fp32'), channels_last=(Bool, False),
                        compile=(Bool | Literal[COMPILE_MODES], False))


# ---------------------------------------------------------------------------------------------------------------
# Blocks made from registered classes


def _field_type(annotation: object, default: object) -> object:
    """The schema type of a constructor parameter, from its type hint or else from its default value."""
    if annotation is inspect.Parameter.empty:
        if default is inspect.Parameter.empty or default is None:
            return Any
        if type(default) is int:  # an integer default does not say that 0.1 is wrong (EDSR's res_scale=1)
            return Float
        annotation = type(default)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return Bool
    if annotation is int:
        return Int
    if annotation is float:
        return Float
    if annotation is str:
        return str
    if origin in (typing.Union, types.UnionType):
        # Members YAML cannot give (a Tensor) are left out; None stays allowed when the hint allows it.
        members = [_field_type(arg, inspect.Parameter.empty) for arg in args if arg is not type(None)]
        members = [member for member in members if member is not Any]
        if not members:
            return Any
        return functools.reduce(operator.or_, members + [type(None)] * (type(None) in args))
    if origin is Literal:
        return annotation
    if annotation in (list, tuple) or origin in (list, tuple, Sequence):
        inner = [_field_type(arg, inspect.Parameter.empty) for arg in args if arg is not Ellipsis]
        if origin is tuple and len(inner) > 1 and Ellipsis not in args:
            return tuple[tuple(inner)]
        return list[inner[0]] if inner else list[Any]
    return Any


def signature_block(name: str, function: Callable, skip: Sequence[str] = (), required: Sequence[str] = (),
                    types_: Mapping[str, object] | None = None) -> type[Block]:
    """A block whose keys are ``function``'s keyword parameters (``type`` plus the rest), typed from its hints.

    Args:
        name: The registered name, the only value ``type`` may have.
        function: A class (its ``__init__``) or a function.
        skip: Parameters the caller fills itself (``params``, ``optimizer``, ``img``).
        required: Parameters that must be given although they have a default.
        types_: Types of parameters that have no type hint and whose default does not tell (BasicSR's schedulers).
    """
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function.__init__ if inspect.isclass(function) else function)
    except Exception:  # a hint that does not resolve (a forward reference): fall back to the defaults
        hints = {}
    fields: dict[str, Any] = {'type': (Literal[name], ...)}
    open_keys = False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            open_keys = True
            continue
        if parameter.name in skip or parameter.kind is parameter.VAR_POSITIONAL:
            continue
        field_type = (types_ or {}).get(parameter.name) or _field_type(hints.get(parameter.name, parameter.annotation),
                                                                       parameter.default)
        integral = field_type is Int or (field_type is Float and type(parameter.default) is int)
        if integral and (parameter.name.startswith('num_') or parameter.name == 'upscale'):
            field_type = PositiveInt  # a network without channels, blocks or upscaling is not a network
        has_default = parameter.default is not parameter.empty and parameter.name not in required
        fields[parameter.name] = (field_type, parameter.default if has_default else ...)
    block = create_model(f'{name}Options', __base__=Block, __doc__=f'``type: {name}``', **fields)
    block.open_keys = open_keys
    return block


@functools.cache
def network_block(arch_type: str) -> type[Block]:
    return signature_block(arch_type, ARCH_REGISTRY.get(arch_type))


@functools.cache
def loss_block(loss_type: str) -> type[Block]:
    # BasicSR's losses check reduction only when built; the schema names it at start.
    return signature_block(loss_type, LOSS_REGISTRY.get(loss_type),
                           types_={'reduction': Literal['none', 'mean', 'sum']})


@functools.cache
def metric_block(metric_type: str) -> type[Block]:
    block = signature_block(metric_type, METRIC_REGISTRY.get(metric_type), skip=('img', 'img2'))
    # BasicSR ignores a metric's unknown keyword arguments: refuse them; 'better' is read by the model.
    fields = {'better': (Literal['higher', 'lower'], 'higher')}
    if 'crop_border' in block.model_fields:
        fields['crop_border'] = (CropBorder, ...)
    block = create_model(block.__name__, __base__=block, __doc__=block.__doc__, **fields)
    block.open_keys = False
    return block


OPTIMIZERS: dict[str, Callable] = {'Adam': torch.optim.Adam}
"""``optim_*.type``: the optimisers BasicSR 1.4.2's ``get_optimizer`` builds; keys from ``torch.optim``."""


SCHEDULER_CLASSES: dict[str, Callable] = {'MultiStepLR': MultiStepRestartLR, 'MultiStepRestartLR': MultiStepRestartLR,
                                          'CosineAnnealingRestartLR': CosineAnnealingRestartLR}
"""``scheduler.type``: the schedulers BasicSR 1.4.2's ``setup_schedulers`` builds."""


SCHEDULER_TYPES = {'milestones': list[PositiveInt], 'gamma': PositiveFloat, 'restarts': list[NonNegativeInt],
                   'restart_weights': list[PositiveFloat], 'periods': list[PositiveInt],
                   'eta_min': NonNegativeFloat}
"""BasicSR's schedulers have no type hints; these are the types they work with."""


Beta = Annotated[Float, Field(ge=0, lt=1)]
OPTIMIZER_TYPES = {'lr': NonNegativeFloat, 'eps': NonNegativeFloat, 'weight_decay': NonNegativeFloat,
                   'betas': tuple[Beta, Beta]}
"""The ranges torch.optim checks only when the optimiser is built, after the datasets."""


@functools.cache
def optimizer_block(optim_type: str) -> type[Block]:
    # BasicSR passes lr positionally: it is required although torch gives it a default.
    return signature_block(optim_type, OPTIMIZERS[optim_type], skip=('params', ), required=('lr', ),
                           types_=OPTIMIZER_TYPES)


@functools.cache
def scheduler_block(scheduler_type: str) -> type[Block]:
    return signature_block(scheduler_type, SCHEDULER_CLASSES[scheduler_type], skip=('optimizer', 'last_epoch'),
                           types_=SCHEDULER_TYPES)


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
    base = DATASET_OPTIONS.get(dataset_type)
    if base is None:
        keys = [key for key in _dataset_keys_from_source(DATASET_REGISTRY.get(dataset_type))
                if key not in DataLoaderOptions.model_fields]
        return create_model(f'{dataset_type}Options', __base__=DataLoaderOptions,
                            **{key: (DATASET_KEY_TYPES.get(key, Any) | None, None) for key in keys})
    return create_model(base.__name__, __base__=base, __doc__=base.__doc__, type=(Literal[dataset_type], ...))


# ---------------------------------------------------------------------------------------------------------------
# Messages

_EXPECTED = {
    'bool_type': 'true or false (a YAML boolean, unquoted)',
    'int_type': 'an integer', 'int_parsing': 'an integer', 'int_from_float': 'an integer',
    'not_an_integer': 'an integer', 'float_type': 'a number', 'float_parsing': 'a number', 'not_a_number': 'a number',
    'string_type': 'a string', 'list_type': 'a list', 'tuple_type': 'a list',
    'dict_type': 'a mapping', 'model_type': 'a mapping', 'model_attributes_type': 'a mapping',
}
_BOUNDS = {'greater_than': ('gt', '>'), 'greater_than_equal': ('ge', '>='), 'less_than': ('lt', '<'),
           'less_than_equal': ('le', '<=')}
_OWN_MESSAGES = ('not_a_number', 'not_an_integer')


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _data_location(data: object, loc: tuple) -> tuple[tuple, object]:
    """The longest prefix of ``loc`` that indexes into ``data``, and the value there.

    Pydantic's locations also name the member of a union that failed; those parts index nothing.
    """
    found: list = []
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list | tuple) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        found.append(part)
    return tuple(found), data


def _allowed(error: dict) -> str | None:
    kind, ctx = error['type'], error.get('ctx') or {}
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in _BOUNDS:
        bound, sign = _BOUNDS[kind]
        return f'{sign} {ctx[bound]}'
    if kind == 'literal_error':
        return ctx['expected']
    if kind == 'too_short':
        return f'at least {ctx["min_length"]} items'
    if kind == 'too_long':
        return f'at most {ctx["max_length"]} items'
    return None


def _problem(error: dict) -> str:
    kind = error['type']
    if kind in _BOUNDS:
        return 'out of range'
    if kind == 'literal_error':
        return 'not an allowed value'
    if kind in _OWN_MESSAGES:
        return error['msg']
    if kind in _EXPECTED:
        return 'wrong type'
    if kind in ('too_short', 'too_long'):
        return 'wrong number of items'
    return error['msg'].removeprefix('Value error, ')


def _dotted(parts: tuple) -> str:
    return '.'.join(map(str, parts))


def format_error(error: ValidationError, data: object, prefix: tuple = ()) -> str:
    """One line for the first error of ``error``: the dotted key, what is wrong, the value and what is allowed.

    Args:
        error: Pydantic's error for ``data``.
        data: What was validated.
        prefix: The location of ``data`` in the option file.
    """
    errors = error.errors()
    first = errors[0]
    loc, value = _data_location(data, first['loc'])
    if first['type'] == 'missing':
        if isinstance(first['loc'][-1], int):  # an item of a fixed-length list
            return f'{_dotted(prefix + loc)}: too few items; got {_show(value)}'
        return _dotted(prefix + first['loc']) + ': required key is missing'
    if first['type'] == 'unknown_key':
        return _dotted(prefix + loc + (first['ctx']['key'], )) + f': unknown key; {first["ctx"]["hint"]}'
    # Every error at the same place (one per member of a union) adds what it would have allowed.
    allowed: list[str] = []
    for other in errors:
        text = _allowed(other)
        if _data_location(data, other['loc'])[0] == loc and text and text not in allowed:
            allowed.append(text)
    # A value that fits no member of a union with an enumeration is best told it is not one of the values.
    at_loc = [other['type'] for other in errors if _data_location(data, other['loc'])[0] == loc]
    if any(kind in _BOUNDS for kind in at_loc):
        problem = 'out of range'
    else:
        problem = 'not an allowed value' if 'literal_error' in at_loc else _problem(first)
    message = f'{_dotted(prefix + loc)}: {problem}; got {_show(value)}'
    return message + (f'; allowed: {" or ".join(allowed)}' if allowed else '')


def _validate(block: type[BaseModel], data: object, prefix: tuple) -> None:
    try:
        block.model_validate(data)
    except ValidationError as error:
        raise OptionError(format_error(error, data, prefix)) from None


def _choice(key: tuple, value: object, known: Sequence[str], what: str) -> None:
    if value in known:
        return
    dotted = _dotted(key)
    if value is None:
        raise OptionError(f'{dotted}: required key is missing; allowed: {", ".join(sorted(known))}')
    close = difflib.get_close_matches(str(value), list(known), n=1, cutoff=0.6)
    hint = f'; did you mean {close[0]}?' if close else ''
    raise OptionError(f'{dotted}: not a registered {what}; got {_show(value)}{hint}; allowed: '
                      f'{", ".join(sorted(known))}')


def _typed(key: tuple, data: object, known: Sequence[str], what: str, block: Callable[[str], type[Block]]) -> None:
    """Check a block whose ``type`` names one of ``known`` against that class's own block."""
    if not isinstance(data, Mapping):
        raise OptionError(f'{_dotted(key)}: wrong type; got {_show(data)}; allowed: a mapping')
    misspelt = difflib.get_close_matches('type', [str(name) for name in data], n=1, cutoff=0.6)
    if 'type' not in data and misspelt:
        raise OptionError(f'{_dotted(key + (misspelt[0], ))}: unknown key; did you mean type?')
    _choice(key + ('type', ), data.get('type'), known, what)
    _validate(block(data['type']), data, key)


# ---------------------------------------------------------------------------------------------------------------
# The check


def check_option_schema(opt: Mapping, training: bool | None = None, run: bool = True) -> None:
    """Raise :class:`~oisr_basicsr.options.OptionError` for the first key of ``opt`` that the schema refuses.

    Checks types, ranges, enumerations, unknown keys (with the nearest known key) and required keys of every
    block; touches no file.

    Args:
        opt: An option dict, as read from YAML or as BasicSR's ``parse_options`` returns it.
        training: Whether it starts a training run, which needs ``train``, ``logger`` and the training data
            loader's keys. Default: ``opt['is_train']`` (set by BasicSR), else False.
        run: Whether BasicSR's train or test pipeline runs it, which needs the keys of :data:`RUN_REQUIRED`;
            tools that build the network alone (inference, export) need none of them.
    """
    if not isinstance(opt, Mapping):
        raise OptionError(f'the option file must be a mapping of keys to values; got {_show(opt)}')
    training = bool(opt.get('is_train')) if training is None else training
    _validate(OptionFile, opt, ())
    if run:
        for key in RUN_REQUIRED:
            if opt.get(key) is None:
                raise OptionError(f'{key}: required key is missing')
    if opt.get('model_type') is not None:
        _choice(('model_type', ), opt['model_type'], [name for name, _ in MODEL_REGISTRY], 'model')
    for key in ('ode', 'acceleration'):
        if opt.get(key) is not None:
            _validate(ode_block() if key == 'ode' else acceleration_block(), opt[key], (key, ))
    for key, network in opt.items():
        if key.startswith('network_'):
            _typed((key, ), network, [name for name, _ in ARCH_REGISTRY], 'architecture', network_block)
    for phase, dataset in (opt.get('datasets') or {}).items():
        _check_dataset_entry(phase, dataset)
    _announce_extrapolation(opt)
    _check_train(opt.get('train'), training)
    val = opt.get('val') or {}
    for name, metric in (val.get('metrics') or {}).items():
        _typed(('val', 'metrics', name), metric, [name for name, _ in METRIC_REGISTRY], 'metric', metric_block)
        _check_scale_crop_border(name, metric, opt.get('model_type'))
    if training:
        for key in ('train', 'logger'):
            if opt.get(key) is None:
                raise OptionError(f'{key}: required key is missing (a training run needs it)')
        if 'train' not in (opt.get('datasets') or {}):
            raise OptionError('datasets.train: required key is missing (a training run needs it)')
        for key in ('print_freq', 'save_checkpoint_freq'):
            if opt['logger'].get(key) is None:
                raise OptionError(f'logger.{key}: required key is missing (a training run needs it)')
        if opt.get('val') is not None and val.get('val_freq') is None:
            raise OptionError('val.val_freq: required key is missing (a training run with val needs it)')


def _announce_extrapolation(opt: Mapping) -> None:
    """Say once which NODE-SR test scales lie beyond the training scales: allowed, but an extrapolation."""
    datasets = {phase: entry for phase, entry in (opt.get('datasets') or {}).items()
                if entry.get('type') == 'ContinuousScalePairedDataset'}
    train = datasets.get('train', {})
    highest = max(train.get('scale_range') or train.get('scales') or DEFAULT_SCALES)
    source = 'datasets.train' if 'train' in datasets else "the recipe's default"
    for phase, entry in datasets.items():
        scale = entry.get('test_scale')
        if phase != 'train' and scale is not None and float(scale) > highest:
            key = f'datasets.{phase}.test_scale'
            if (key, str(scale)) not in _noticed:
                _noticed.add((key, str(scale)))
                print(f'note: {key}: {float(scale):g} is beyond the training scales (up to {highest:g}, {source}); '
                      'NODE-SR extrapolates there', file=sys.stderr)


def _check_scale_crop_border(name: str, metric: Mapping, model_type: str | None) -> None:
    """``crop_border: scale`` is resolved per dataset by NODESRModel; any other model would pass the word on."""
    if metric.get('crop_border') != 'scale' or model_type is None:
        return
    # A class attribute rather than issubclass(NODESRModel), so that option checking never imports a model.
    if not getattr(MODEL_REGISTRY.get(model_type), 'resolves_scale_crop_border', False):
        raise OptionError(f"val.metrics.{name}.crop_border: 'scale' is resolved by NODESRModel only; got 'scale' "
                          f'under model_type {model_type}; allowed: an integer >= 0')


def _check_dataset_entry(phase: str, dataset: object) -> None:
    kind = str(phase).split('_')[0]
    if kind not in ('train', 'val', 'test'):
        raise OptionError(f'datasets.{phase}: not a dataset phase; got {_show(phase)}; allowed: train, val, val_1, '
                          '... (training), test_1, ... (testing)')
    _typed(('datasets', phase), dataset, [name for name, _ in DATASET_REGISTRY], 'dataset', dataset_block)
    required = TRAIN_ONLY_REQUIRED + (('gt_size', ) if 'gt_size' in dataset_block(dataset['type']).model_fields
                                      else ())
    if kind == 'train':
        for key in required:
            if dataset.get(key) is None:
                raise OptionError(f'datasets.{phase}.{key}: required key is missing (a training dataset needs it)')
    elif dataset['type'] == 'ContinuousScalePairedDataset' and dataset.get('test_scale') is None:
        raise OptionError(f'datasets.{phase}.test_scale: required key is missing (a {kind} dataset of '
                          'ContinuousScalePairedDataset needs it); allowed: a number > 1')


def _check_train(train: Mapping | None, training: bool) -> None:
    if train is None:
        return
    for key, block in train.items():
        if key.startswith('optim_'):
            _typed(('train', key), block, list(OPTIMIZERS), 'optimizer', optimizer_block)
        elif key == 'scheduler' and block is not None:
            _typed(('train', key), block, list(SCHEDULER_CLASSES), 'scheduler', scheduler_block)
        elif key.endswith('_opt') and block is not None:
            _typed(('train', key), block, [name for name, _ in LOSS_REGISTRY], 'loss', loss_block)
    if training:
        for key in ('total_iter', 'optim_g', 'scheduler'):
            if train.get(key) is None:
                raise OptionError(f'train.{key}: required key is missing (a training run needs it)')
        if train.get('pixel_opt') is None and train.get('perceptual_opt') is None:
            raise OptionError('train.pixel_opt: required key is missing (a training run needs pixel_opt or '
                              'perceptual_opt)')
