"""Pydantic's errors as one line: ``<dotted.key>: <what is wrong>; got <value>; allowed: ...``."""

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ...errors import OptionError
from .values import RULE, show

_Block = TypeVar('_Block', bound=BaseModel)

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


def _data_location(data: object, loc: tuple) -> tuple[tuple, object]:
    """The longest prefix of ``loc`` that indexes into ``data``, and the value there.

    Pydantic's locations also name the member of a union that failed, or ``[key]`` for a mapping's key; those
    parts index nothing.
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


def _allowed(error: Mapping) -> str | None:
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


def _problem(error: Mapping) -> str:
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


def dotted(parts: tuple) -> str:
    """``('datasets', 'train', 'gt_size')`` as ``datasets.train.gt_size``."""
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
    if first['type'] == RULE:
        ctx = first['ctx']
        return dotted(prefix + loc + tuple(ctx['key'])) + ctx['joiner'] + ctx['problem']
    if first['type'] == 'missing':
        if isinstance(first['loc'][-1], int):  # an item of a fixed-length list
            return f'{dotted(prefix + loc)}: too few items; got {show(value)}'
        return dotted(prefix + first['loc']) + ': required key is missing'
    if first['type'] == 'unknown_key':
        return dotted(prefix + loc + (first['ctx']['key'], )) + f': unknown key; {first["ctx"]["hint"]}'
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
    message = f'{dotted(prefix + loc)}: {problem}; got {show(value)}'
    return message + (f'; allowed: {" or ".join(allowed)}' if allowed else '')


def validate_block(block: type[_Block], data: object, prefix: tuple = (), context: Mapping[str, Any] | None = None
                   ) -> _Block:
    """``data`` as a ``block``, or :class:`~oisr_basicsr.errors.OptionError` with the line of :func:`format_error`.

    Args:
        block: The schema's model of the block.
        data: The block as read from YAML.
        prefix: Where the block lies in the option file (``('ode', )``), for the message.
        context: What the block's validators are told (see :func:`~.root.check_option_schema`).
    """
    try:
        return block.model_validate(data, context=context)
    except ValidationError as error:
        raise OptionError(format_error(error, data, prefix)) from None
