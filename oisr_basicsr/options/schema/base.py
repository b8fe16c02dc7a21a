"""The base of every block of the option schema: a mapping whose keys are all known."""

import difflib
from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class Block(BaseModel):
    """A mapping of an option file whose keys are all known; an unknown key is refused with the nearest one."""

    model_config = ConfigDict(extra='ignore')
    open_keys: ClassVar[bool] = False
    """Set for a registered class whose ``__init__`` takes ``**kwargs``: any key may be meant for it."""
    key_patterns: ClassVar[tuple[str, ...]] = ()
    """Prefixes of further keys the block takes (``network_*``, ``optim_*``), typed by its ``__pydantic_extra__``."""

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
