"""Option files: read safely (:mod:`.reading`), checked against the one typed schema (:mod:`.schema`), which
returns the whole file as an :class:`OptionFile`, and the files they name checked before a run starts
(:mod:`.files`, :mod:`.dataset_files`).

Nothing here imports a model, and nothing here starts a run: :mod:`oisr_basicsr.startup` does, on top of these.
"""

from ..errors import OptionError, report_user_errors
from .files import check_option_files
from .reading import apply_forced_option, read_option_file
from .schema import OptionFile, check_option_schema, options_as_read
from .schema.model_blocks import (
    ADAPTIVE_SOLVERS,
    COMPILE_MODES,
    FIXED_STEP_SOLVERS,
    GRADIENT_MODES,
    SOLVERS,
    T_EQUALS_ONE,
    AccelerationOptions,
    ODEOptions,
    parse_acceleration_options,
    parse_ode_options,
)
from .schema.registered import INPUT_CHANNEL_KEYS, OUTPUT_CHANNEL_KEYS, network_channels
from .schema.root import NAME_MAX_BYTES, SEED_MAX

__all__ = ['ADAPTIVE_SOLVERS', 'COMPILE_MODES', 'FIXED_STEP_SOLVERS', 'GRADIENT_MODES',
           'INPUT_CHANNEL_KEYS', 'NAME_MAX_BYTES', 'OUTPUT_CHANNEL_KEYS', 'SEED_MAX', 'SOLVERS',
           'T_EQUALS_ONE', 'AccelerationOptions', 'ODEOptions', 'OptionError', 'OptionFile', 'apply_forced_option',
           'check_option_files', 'check_option_schema', 'network_channels', 'options_as_read',
           'parse_acceleration_options', 'parse_ode_options', 'read_option_file', 'report_user_errors']
