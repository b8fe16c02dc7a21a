"""The value types of the option schema, and the error a rule of the schema raises.

YAML 1.1 reads a number without a dot (``1e-4``, ``5e3``) as a string and writes ``!!float 5e3`` for what is
meant as an integer; the number types here read both as the number meant, refuse a boolean, NaN and infinity,
and say once per key which strings they read as numbers.
"""

import math
import sys
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

_noticed: set[tuple[str, str]] = set()


def notice_once(key: str, value: str, text: str) -> None:
    """Print ``note: <text>`` on stderr, once per process for each key and value."""
    if (key, value) not in _noticed:
        _noticed.add((key, value))
        print(f'note: {text}', file=sys.stderr)


def notice(info: ValidationInfo, key: str, value: str, text: str) -> None:
    """Say ``text`` about ``value`` of ``key`` once (:func:`notice_once`); when the validation collects its notes
    (a ``notes`` list in its context), only once the whole file is accepted."""
    pending = (info.context or {}).get('notes')
    if pending is None:
        notice_once(key, value, text)
    else:
        pending.append((key, value, text))


def _number(value: object, info: ValidationInfo, integer: bool) -> object:
    kind, what = ('not_an_integer', 'an integer') if integer else ('not_a_number', 'a number')
    if isinstance(value, bool):
        raise PydanticCustomError(kind, f'a boolean is not {what}')
    text = value if isinstance(value, str) else None
    if text is not None:
        try:
            value = float(text)
        except ValueError:
            raise PydanticCustomError(kind, f'not {what}') from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(kind, 'not a finite number')
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError('not_an_integer', 'not an integer')
        value = int(value)
    if text is not None:
        key = info.field_name or '?'
        notice(info, key, text, f'{key}: {text!r} is read as the number {value:g} (YAML 1.1 reads a number without '
                                'a dot, such as 1e-4, as a string; write 1.0e-4 to silence this)')
    return value


def _integer(value: object, info: ValidationInfo) -> object:
    return _number(value, info, integer=True)


def _float(value: object, info: ValidationInfo) -> object:
    return _number(value, info, integer=False)


def _integral_as_int(value: object, info: ValidationInfo) -> object:
    value = _number(value, info, integer=False)
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integer)]
"""An integer; ``5e3`` (a string under YAML 1.1) and ``!!float 5e3`` are taken when integral, a boolean is not."""
Float = Annotated[float, BeforeValidator(_float)]
"""A finite number; ``1e-4`` (a string under YAML 1.1) is taken with a one-time notice, a boolean is not."""
IntOrFloat = Annotated[int | float, BeforeValidator(_integral_as_int), WithJsonSchema({'type': 'number'})]
"""A finite number of a parameter whose integer default leaves open whether fractions are meant (EDSR's
``res_scale=1``, RCAN's ``squeeze_factor=16``): an integral value (``1e1``, ``16.0``) is read as that integer, as
the default is one and code may use it as a size; any other as a float."""
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Bool = Annotated[bool, Field(strict=True)]
"""A YAML boolean (true / false); the string 'false' is refused, not read as True."""
NonEmptyStr = Annotated[str, Field(min_length=1)]


CropBorder = NonNegativeInt | Literal['scale']
"""Pixels shaved before a metric; ``scale`` shaves ceil(t) under NODESRModel."""

RULE = 'option_rule'
"""The error type of :func:`rule_error`."""


def rule_error(problem: str, *key: str | int, joiner: str = ': ') -> PydanticCustomError:
    """A rule of the schema broken: reported as ``<location>.<key><joiner><problem>`` on one line.

    Args:
        problem: What is wrong and what is allowed.
        key: The keys below the block whose validator raises it (none: the block itself).
        joiner: What stands between the dotted key and the problem.
    """
    return PydanticCustomError(RULE, '{problem}', {'problem': problem, 'key': key, 'joiner': joiner})


def show(value: object) -> str:
    """A value as an error message quotes it: its repr, shortened to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def as_read(written: object, read: object) -> object:
    """``written`` (a block as YAML gave it) with the numbers the schema read in it: a string YAML 1.1 left as text
    (``1e-4``) becomes that number, an integral float of an integer key (``!!float 5e3``) that integer. Everything
    else stays as written, so that BasicSR, which reads the dict, gets what it always got.

    Args:
        written: The block as read from YAML.
        read: The same block as the schema dumps it (``model_dump(exclude_unset=True)``).
    """
    if isinstance(written, Mapping) and isinstance(read, Mapping):
        return type(written)((key, as_read(value, read[key]) if key in read else value)
                             for key, value in written.items())
    if isinstance(written, list) and isinstance(read, list | tuple) and len(written) == len(read):
        return [as_read(item, read_item) for item, read_item in zip(written, read, strict=True)]
    if isinstance(written, str) and isinstance(read, int | float) and not isinstance(read, bool):
        return read
    if isinstance(written, float) and type(read) is int:
        return read
    return written
