"""The whole option file as one typed object (:class:`OptionFile`), and the check that makes it
(:func:`check_option_schema`): the one validator of every option file."""

import math
import os
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Annotated, ClassVar, Literal

from basicsr.utils.registry import MODEL_REGISTRY
from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, model_validator

from ...data.continuous_scale_dataset import DEFAULT_SCALES
from ...errors import OptionError
from .base import Block
from .blocks import DistParamsOptions, LoggerOptions, PathOptions, TrainOptions, ValOptions
from .datasets import TRAIN_ONLY_REQUIRED, ContinuousScaleOptions, Dataset, Phase
from .messages import dotted, validate_block
from .model_blocks import AccelerationOptions, ODEOptions
from .registered import INPUT_CHANNEL_KEYS, Network, check_choice, network_channels
from .values import Bool, Int, NonEmptyStr, NonNegativeInt, PositiveInt, as_read, notice_once, rule_error, show

FILE_NAME_MAX_BYTES = 255
"""The longest file name ext4, XFS, Btrfs and APFS store (NTFS: 255 UTF-16 units, never fewer bytes)."""
NAME_ADDITION_BYTES = len('debug_') + len('train__.log') + len('YYYYmmdd_HHMMSS')
"""What BasicSR adds to ``name`` in a file name: ``--debug`` prepends ``debug_`` and the log is
``train_<name>_<time>.log``, longer than the ``<name>_archived_<time>`` an existing folder is renamed to."""
NAME_MAX_BYTES = FILE_NAME_MAX_BYTES - NAME_ADDITION_BYTES
INVISIBLE_CATEGORIES = {'Cc': 'a control character', 'Cf': 'a format character', 'Zl': 'a line separator',
                        'Zp': 'a paragraph separator', 'Co': 'a private-use character', 'Cs': 'a lone surrogate',
                        'Cn': 'an unassigned code point'}
"""Unicode categories of characters a folder name must not hold: nobody can read them (bidirectional overrides,
zero-width spaces are Cf), and a terminal may act on them."""
PLAIN_NAME = 'use letters, digits, "_", "-" or "." without path separators (not "." or "..")'


def _folder_name(name: str) -> str:
    """``name`` becomes ``experiments/<name>``: a plain folder name that a file system and a person can handle."""
    separators = {'/', os.sep, os.altsep} - {None}
    if name in ('.', '..') or any(separator in name for separator in separators):
        raise rule_error(f'{name!r} is not a plain folder name; {PLAIN_NAME}.')
    invisible = next((char for char in name if unicodedata.category(char) in INVISIBLE_CATEGORIES), None)
    if invisible is not None:
        what = INVISIBLE_CATEGORIES[unicodedata.category(invisible)]
        label = unicodedata.name(invisible, 'no name')
        raise rule_error(f'{name!r} is not a plain folder name: it holds U+{ord(invisible):04X} ({label}), '
                         f'{what}; {PLAIN_NAME}.')
    size = len(name.encode('utf-8'))
    if size > NAME_MAX_BYTES:
        raise rule_error(f'{size} bytes long; allowed: at most {NAME_MAX_BYTES} bytes (a file name holds '
                         f'{FILE_NAME_MAX_BYTES}, and BasicSR adds up to {NAME_ADDITION_BYTES} to it)')
    return name


def _registered_model(model_type: str) -> str:
    check_choice(model_type, [name for name, _ in MODEL_REGISTRY], 'model')
    return model_type


def _non_finite_numbers(data: object, location: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """Every NaN or infinity (``.nan``, ``.inf``) in ``data``, with its location, in keys of any type."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _non_finite_numbers(value, location + (key, ))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _non_finite_numbers(value, location + (index, ))
    elif isinstance(data, float) and not math.isfinite(data):
        yield location, data


def _reads_acceleration(model_type: str) -> bool:
    # A class attribute rather than issubclass(AcceleratedSRModel), so that option checking never imports a model.
    return getattr(MODEL_REGISTRY.get(model_type), 'reads_acceleration_block', False)


_REQUIRED = 'required by train and test'
RUN_REQUIRED = ('name', 'model_type', 'num_gpu', 'datasets', 'path')
"""Top-level keys BasicSR's train and test pipelines cannot start without (tools need only ``network_g``)."""
SEED_MAX = 2**32 - 1
"""NumPy's seeds end here."""


class OptionFile(Block):
    """The whole option file (top level)."""

    model_config = ConfigDict(extra='allow')
    key_patterns: ClassVar[tuple[str, ...]] = ('network_', )
    __pydantic_extra__: dict[str, Network] = Field(init=False)
    name: Annotated[NonEmptyStr, AfterValidator(_folder_name)] | None = Field(
        None, description=f'{_REQUIRED}; a plain folder name of at most {NAME_MAX_BYTES} bytes')
    model_type: Annotated[str, AfterValidator(_registered_model)] | None = Field(None, description=_REQUIRED)
    scale: PositiveInt | None = None
    num_gpu: NonNegativeInt | Literal['auto'] | None = Field(None, description=_REQUIRED)
    manual_seed: Annotated[Int, Field(ge=0, le=SEED_MAX)] | None = None
    find_unused_parameters: Bool = False
    datasets: dict[Phase, Dataset] | None = Field(None, description=_REQUIRED)
    path: PathOptions | None = Field(None, description=_REQUIRED)
    network_g: Network | None = Field(None, description='the network: `type` and its arguments; other `network_*` '
                                                        'keys likewise')
    train: TrainOptions | None = None
    val: ValOptions | None = None
    logger: LoggerOptions | None = None
    dist_params: DistParamsOptions | None = None
    ode: ODEOptions | None = Field(None, description='NODESRModel: the ODE solver')
    acceleration: AccelerationOptions | None = Field(None, description='AcceleratedSRModel, NODESRModel: fast paths')
    dist: Bool | None = Field(None, description='set by BasicSR')
    rank: NonNegativeInt | None = Field(None, description='set by BasicSR')
    world_size: PositiveInt | None = Field(None, description='set by BasicSR')
    auto_resume: Bool | None = Field(None, description='set by BasicSR')
    is_train: Bool | None = Field(None, description='set by BasicSR')
    root_path: str | None = Field(None, description='set by BasicSR')

    @model_validator(mode='before')
    @classmethod
    def _finite_numbers(cls, data: object) -> object:
        # The typed numbers refuse NaN and infinity themselves; this also covers the keys of any type.
        found = next(_non_finite_numbers(data), None)
        if found is not None:
            location, value = found
            raise rule_error(f'not a finite number; got {show(value)}; allowed: a number', *location)
        return data

    @property
    def networks(self) -> dict[str, Block]:
        """Every ``network_*`` block by its key."""
        return {key: network for key, network in {'network_g': self.network_g, **self.model_extra}.items()
                if network is not None}

    @model_validator(mode='after')
    def _rules(self, info: ValidationInfo) -> 'OptionFile':
        context = info.context or {}
        if context.get('run', True):
            for key in RUN_REQUIRED:
                if getattr(self, key) is None:
                    raise rule_error('required key is missing', key)
        for phase, dataset in (self.datasets or {}).items():
            self._check_dataset_keys(phase, dataset)
        if context.get('training', False):
            self._check_training_keys()
        self._check_combinations()
        return self

    def _check_dataset_keys(self, phase: str, dataset: Block) -> None:
        kind = phase.split('_')[0]
        if kind == 'train':
            required = TRAIN_ONLY_REQUIRED + (('gt_size', ) if 'gt_size' in type(dataset).model_fields else ())
            for key in required:
                if getattr(dataset, key) is None:
                    raise rule_error('required key is missing (a training dataset needs it)', 'datasets', phase, key)
        elif isinstance(dataset, ContinuousScaleOptions) and dataset.test_scale is None:
            raise rule_error(f'required key is missing (a {kind} dataset of ContinuousScalePairedDataset needs it); '
                             'allowed: a number > 1', 'datasets', phase, 'test_scale')
        gt_size, scale = getattr(dataset, 'gt_size', None), self.scale
        if phase == 'train' and gt_size is not None and scale is not None and gt_size % scale:
            raise rule_error(f'{gt_size} is not divisible by scale {scale}.', 'datasets', phase, 'gt_size')
        if getattr(dataset, 'protocol', None) == 'matlab_y' and self.network_g is not None:
            # A matlab_y benchmark gives one-channel images; refuse it for a network that reads three.
            channels = network_channels(self.network_g.model_dump(exclude_unset=True), INPUT_CHANNEL_KEYS)
            if channels not in (None, 1):
                raise rule_error(f'matlab_y gives single-channel Y images, but network_g ({self.network_g.type}) '
                                 f'reads {channels} channels; use protocol: rgb for it.', 'datasets', phase, 'protocol')

    def _check_training_keys(self) -> None:
        if self.train is not None:
            for key in ('total_iter', 'optim_g', 'scheduler'):
                if getattr(self.train, key, None) is None:
                    raise rule_error('required key is missing (a training run needs it)', 'train', key)
            if self.train.pixel_opt is None and self.train.perceptual_opt is None:
                raise rule_error('required key is missing (a training run needs pixel_opt or perceptual_opt)',
                                 'train', 'pixel_opt')
        for key in ('train', 'logger'):
            if getattr(self, key) is None:
                raise rule_error('required key is missing (a training run needs it)', key)
        if 'train' not in (self.datasets or {}):
            raise rule_error('required key is missing (a training run needs it)', 'datasets', 'train')
        for key in ('print_freq', 'save_checkpoint_freq'):
            if getattr(self.logger, key) is None:
                raise rule_error('required key is missing (a training run needs it)', 'logger', key)
        if self.val is not None and self.val.val_freq is None:
            raise rule_error('required key is missing (a training run with val needs it)', 'val', 'val_freq')

    def _check_combinations(self) -> None:
        """The rules that tie one block to another."""
        for name, metric in ((self.val and self.val.metrics) or {}).items():
            # ``crop_border: scale`` is resolved per dataset by NODESRModel; any other model would pass the word on.
            if (getattr(metric, 'crop_border', None) == 'scale' and self.model_type is not None
                    and not getattr(MODEL_REGISTRY.get(self.model_type), 'resolves_scale_crop_border', False)):
                raise rule_error(f"'scale' is resolved by NODESRModel only; got 'scale' under model_type "
                                 f'{self.model_type}; allowed: an integer >= 0', 'val', 'metrics', name, 'crop_border')
        if 'acceleration' in self.model_fields_set and self.model_type is not None:
            if not _reads_acceleration(self.model_type):
                # Ignoring it would train in fp32 while the option file says otherwise.
                readers = sorted(name for name, _ in MODEL_REGISTRY if _reads_acceleration(name))
                raise rule_error(f'model_type {self.model_type} does not read it; use one of {", ".join(readers)}.',
                                 'acceleration')
        for key, network in self.networks.items():
            upscale = getattr(network, 'upscale', None)
            if 'upscale' in network.model_fields_set and self.scale is not None and upscale != self.scale:
                raise rule_error(f'is {upscale} but scale is {self.scale}; they must be equal.', key, 'upscale',
                                 joiner=' ')


def check_option_schema(opt: Mapping, training: bool | None = None, run: bool = True) -> OptionFile:
    """The option dict as one typed object, or :class:`~oisr_basicsr.errors.OptionError` for the first key the
    schema refuses.

    Checks types, ranges, enumerations, unknown keys (with the nearest known key), required keys, registered
    names, what each registered network's constructor accepts (built on the meta device) and the rules between
    blocks; touches no file.

    Args:
        opt: An option dict, as read from YAML or as BasicSR's ``parse_options`` returns it.
        training: Whether it starts a training run, which needs ``train``, ``logger`` and the training data
            loader's keys. Default: ``opt['is_train']`` (set by BasicSR), else False.
        run: Whether BasicSR's train or test pipeline runs it, which needs the keys of :data:`RUN_REQUIRED`;
            tools that build the network alone (inference, export) need none of them.

    Returns:
        The typed options; :func:`options_as_read` gives the dict BasicSR reads.
    """
    if not isinstance(opt, Mapping):
        raise OptionError(f'the option file must be a mapping of keys to values; got {show(opt)}')
    training = bool(opt.get('is_train')) if training is None else training
    notes: list[tuple[str, str, str]] = []
    checked = validate_block(OptionFile, opt, context={'training': training, 'run': run, 'notes': notes})
    for note in notes:  # said only now: a file that is refused gets its error alone
        notice_once(*note)
    _announce_extrapolation(checked)
    return checked


def options_as_read(opt: dict, checked: OptionFile) -> dict:
    """``opt`` with the numbers the schema read in it (``1e-4`` written as a string, ``!!float 5e3`` for an integer
    key): the dict BasicSR's code reads. Everything else stays as written.

    Args:
        opt: The option dict :func:`check_option_schema` checked.
        checked: What it returned.
    """
    return as_read(opt, checked.model_dump(exclude_unset=True, by_alias=True))


def _announce_extrapolation(checked: OptionFile) -> None:
    """Say once which NODE-SR test scales lie beyond the training scales: allowed, but an extrapolation."""
    datasets = {phase: entry for phase, entry in (checked.datasets or {}).items()
                if isinstance(entry, ContinuousScaleOptions)}
    train = datasets.get('train')
    highest = max((train and (train.scale_range or train.scales)) or DEFAULT_SCALES)
    source = 'datasets.train' if train is not None else "the recipe's default"
    for phase, entry in datasets.items():
        if phase != 'train' and entry.test_scale is not None and entry.test_scale > highest:
            key = dotted(('datasets', phase, 'test_scale'))
            notice_once(key, str(entry.test_scale), f'{key}: {entry.test_scale:g} is beyond the training scales (up '
                                                     f'to {highest:g}, {source}); NODE-SR extrapolates there')
