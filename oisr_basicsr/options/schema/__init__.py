"""One typed schema for a whole BasicSR option file, checked before anything is built.

BasicSR reads its YAML loosely: a misspelt key is ignored, ``lr: 1e-4`` is a string under YAML 1.1, and a wrong
type surfaces as a traceback hours later. Every block is a pydantic model here (pydantic v2: typed models, the
exact location of every error, and a JSON schema from which ``docs/options.md`` is generated). The blocks whose
``type`` names a registered class (networks, datasets, losses, metrics, optimisers, schedulers) get their keys
from that class itself: its ``__init__`` signature and type hints, so any BasicSR or plugin architecture is
checked without a hand-kept list; a dataset, which takes one options dict, from the keys its module reads.

:func:`check_option_schema` returns the whole file as one :class:`OptionFile` or raises
:class:`~oisr_basicsr.errors.OptionError` with one line, ``<dotted.key>: <what is wrong>; got <value>; allowed: <...>``.

Modules: :mod:`.values` (value types), :mod:`.base` (the block), :mod:`.registered` (blocks made from registered
classes), :mod:`.datasets`, :mod:`.blocks` (``path``, ``train``, ``val``, ``logger``, ``dist_params``),
:mod:`.model_blocks` (``ode``, ``acceleration``), :mod:`.messages` (the error line), :mod:`.root` (the file).
"""

from .root import OptionFile, check_option_schema, options_as_read

__all__ = ['OptionFile', 'check_option_schema', 'options_as_read']
