"""Blocks whose ``type`` names a registered class (networks, losses, metrics, optimisers, schedulers): their keys come
from that class itself, its ``__init__`` signature and type hints, so any BasicSR or plugin class is checked without
a hand-kept list."""

import difflib
import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

import torch
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
from pydantic import (
    Field,
    SerializeAsAny,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    create_model,
    model_validator,
)

from .base import Block
from .values import (
    Bool,
    CropBorder,
    Float,
    Int,
    IntOrFloat,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    as_read,
    rule_error,
    show,
)

# How registered architectures name their numbers of input and output channels (BasicSR, SwinIR, RIDNet).
INPUT_CHANNEL_KEYS = ('num_in_ch', 'in_chans', 'in_channels')
OUTPUT_CHANNEL_KEYS = ('num_out_ch', 'out_chans', 'out_channels')


def check_choice(value: object, known: Iterable[str], what: str, *key: str) -> None:
    """Raise the schema's error unless ``value`` is one of ``known``, the names of the registered ``what``.

    Args:
        value: The name given.
        known: The registered names.
        what: What the registry holds (``architecture``), for the message.
        key: Where the name is given, below the block being validated.
    """
    known = sorted(known)
    if value in known:
        return
    if value is None:
        raise rule_error(f'required key is missing; allowed: {", ".join(known)}', *key)
    close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
    hint = f'; did you mean {close[0]}?' if close else ''
    raise rule_error(f'not a registered {what}; got {show(value)}{hint}; allowed: {", ".join(known)}', *key)


def registered(what: str, names: Callable[[], Iterable[str]], block: Callable[[str], type[Block]]) -> object:
    """The type of a block whose ``type`` names a registered ``what``: validated as that class's own block.

    Args:
        what: What the registry holds (``architecture``), for the messages.
        names: The registered names, read when a block is validated (plugins register after import).
        block: The block of a registered name.
    """
    def validate(data: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Block:
        if not isinstance(data, Mapping):
            raise rule_error(f'wrong type; got {show(data)}; allowed: a mapping')
        misspelt = difflib.get_close_matches('type', [str(name) for name in data], n=1, cutoff=0.6)
        if 'type' not in data and misspelt:
            raise rule_error('unknown key; did you mean type?', misspelt[0])
        check_choice(data.get('type'), names(), what, 'type')
        return block(data['type']).model_validate(data, context=info.context)

    # Its JSON schema is a mapping: its keys depend on the class it names.
    return Annotated[SerializeAsAny[Block], WrapValidator(validate), WithJsonSchema({'type': 'object'})]


def _field_type(annotation: object, default: object) -> object:
    """The schema type of a constructor parameter, from its type hint or else from its default value."""
    if annotation is inspect.Parameter.empty:
        if default is inspect.Parameter.empty or default is None:
            return Any
        if type(default) is int:  # an integer default does not say that 0.1 is wrong (EDSR's res_scale=1)
            return IntOrFloat
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
                    types_: Mapping[str, object] | None = None, base: type[Block] = Block) -> type[Block]:
    """A block whose keys are ``function``'s keyword parameters (``type`` plus the rest), typed from its hints.

    Args:
        name: The registered name, the only value ``type`` may have.
        function: A class (its ``__init__``) or a function.
        skip: Parameters the caller fills itself (``params``, ``optimizer``, ``img``).
        required: Parameters that must be given although they have a default.
        types_: Types of parameters that have no type hint and whose default does not tell (BasicSR's schedulers).
        base: The block it derives from (its rules apply too).
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
        # An untyped parameter without a default (EDSR's num_in_ch) says nothing either; its name does.
        integral = field_type in (Int, IntOrFloat) or (field_type is Any and parameter.default is parameter.empty)
        if integral and (parameter.name.startswith('num_') or parameter.name == 'upscale'):
            field_type = PositiveInt  # a network without channels, blocks or upscaling is not a network
        has_default = parameter.default is not parameter.empty and parameter.name not in required
        fields[parameter.name] = (field_type, parameter.default if has_default else ...)
    block = create_model(f'{name}Options', __base__=base, __doc__=f'``type: {name}``', **fields)
    block.open_keys = open_keys
    return block


# ---------------------------------------------------------------------------------------------------------------
# Networks


class NetworkBlock(Block):
    """A ``network_*`` block: besides its keys' types, the architecture's own constructor accepts its values."""

    @model_validator(mode='wrap')
    @classmethod
    def _builds(cls, data: object, handler: ValidatorFunctionWrapHandler) -> 'NetworkBlock':
        network = handler(data)
        kwargs = {key: value for key, value in as_read(data, network.model_dump(exclude_unset=True)).items()
                  if key != 'type'}
        error = _construction_error(network.type, kwargs)
        if error is not None:
            raise rule_error(f'({network.type}): {error}', joiner=' ')
        return network


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


@functools.cache
def network_block(arch_type: str) -> type[Block]:
    """The block of ``network_*: {type: arch_type, ...}``: the architecture's constructor arguments."""
    return signature_block(arch_type, ARCH_REGISTRY.get(arch_type), base=NetworkBlock)


Network = registered('architecture', lambda: [name for name, _ in ARCH_REGISTRY], network_block)
"""A ``network_*`` block: ``type`` names a registered architecture, the other keys are its arguments."""


def network_channels(network_opt: Mapping, keys: Sequence[str]) -> int | None:
    """The number of input (:data:`INPUT_CHANNEL_KEYS`) or output (:data:`OUTPUT_CHANNEL_KEYS`) channels
    ``network_opt`` builds with, or None for a channel-agnostic network."""
    parameters = inspect.signature(ARCH_REGISTRY.get(network_opt['type'])).parameters
    for key in keys:
        if key in network_opt:
            return network_opt[key]
        if key in parameters:
            return parameters[key].default
    return None


# ---------------------------------------------------------------------------------------------------------------
# Losses and metrics


@functools.cache
def loss_block(loss_type: str) -> type[Block]:
    """The block of a loss (``train.pixel_opt``, ...) of type ``loss_type``: its constructor arguments."""
    # BasicSR's losses check reduction only when built; the schema names it at start.
    return signature_block(loss_type, LOSS_REGISTRY.get(loss_type),
                           types_={'reduction': Literal['none', 'mean', 'sum']})


Loss = registered('loss', lambda: [name for name, _ in LOSS_REGISTRY], loss_block)


@functools.cache
def metric_block(metric_type: str) -> type[Block]:
    """The block of ``val.metrics.<name>`` of type ``metric_type``: the metric function's arguments and ``better``."""
    block = signature_block(metric_type, METRIC_REGISTRY.get(metric_type), skip=('img', 'img2'))
    # BasicSR ignores a metric's unknown keyword arguments: refuse them; 'better' is read by the model.
    fields = {'better': (Literal['higher', 'lower'], 'higher')}
    if 'crop_border' in block.model_fields:
        fields['crop_border'] = (CropBorder, ...)
    block = create_model(block.__name__, __base__=block, __doc__=block.__doc__, **fields)
    block.open_keys = False
    return block


Metric = registered('metric', lambda: [name for name, _ in METRIC_REGISTRY], metric_block)

# ---------------------------------------------------------------------------------------------------------------
# Optimisers and schedulers

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
    """The block of ``train.optim_*`` of type ``optim_type``: the ``torch.optim`` class's arguments."""
    # BasicSR passes lr positionally: it is required although torch gives it a default.
    return signature_block(optim_type, OPTIMIZERS[optim_type], skip=('params', ), required=('lr', ),
                           types_=OPTIMIZER_TYPES)


Optimizer = registered('optimizer', lambda: OPTIMIZERS, optimizer_block)


@functools.cache
def scheduler_block(scheduler_type: str) -> type[Block]:
    """The block of ``train.scheduler`` of type ``scheduler_type``: the scheduler's arguments."""
    return signature_block(scheduler_type, SCHEDULER_CLASSES[scheduler_type], skip=('optimizer', 'last_epoch'),
                           types_=SCHEDULER_TYPES)


Scheduler = registered('scheduler', lambda: SCHEDULER_CLASSES, scheduler_block)
