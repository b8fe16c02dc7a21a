"""Reading BasicSR option files safely: plain data only, each key once.

Option files are read as plain data (:func:`read_option_file`): BasicSR's own reader is PyYAML's full loader,
which builds any Python object a file names, and lets a key given twice replace the first silently (a whole
second ``network_g:`` block included). ``--force_yml`` values are parsed as data too
(:func:`apply_forced_option`) instead of being passed to ``exec``.
"""

import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from ..errors import OptionError

_YAML_TAG_PREFIX = 'tag:yaml.org,2002:'


class _RefusedTagError(yaml.YAMLError):
    def __init__(self, tag: str, mark: yaml.Mark | None):
        super().__init__(tag)
        self.tag = tag.replace(_YAML_TAG_PREFIX, '!!', 1) if tag.startswith(_YAML_TAG_PREFIX) else tag
        self.mark = mark


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: object, mark: yaml.Mark, first_mark: yaml.Mark):
        super().__init__(key)
        self.key, self.mark, self.first_mark = key, mark, first_mark


class _OptionFileLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """PyYAML's safe loader (YAML's standard tags only) with BasicSR's ordered mappings, each key once."""


def _construct_ordered_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    _refuse_duplicate_keys(loader, node)
    loader.flatten_mapping(node)  # YAML merge keys (<<), as the safe loader's own mappings allow
    return OrderedDict(loader.construct_pairs(node))


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """A key written twice in one mapping; the keys a merge (``<<``) brings in may be overridden, as YAML intends."""
    first_marks: dict[object, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == _YAML_TAG_PREFIX + 'merge':
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # refused as a key when the mapping is built
        if key in first_marks:
            raise _DuplicateKeyError(key, key_node.start_mark, first_marks[key])
        first_marks[key] = key_node.start_mark


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
        OptionError: The text is not YAML, holds a tag that would construct a Python object (naming the
            source, the line and the tag), or a key twice in one mapping (naming both lines).
    """
    try:
        return yaml.load(text, Loader=_OptionFileLoader)
    except _DuplicateKeyError as error:
        raise OptionError(f'{source}, line {error.mark.line + 1}: key {error.key!r} appears again (first at line '
                          f'{error.first_mark.line + 1})') from None
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
