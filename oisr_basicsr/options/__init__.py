"""Option files: read safely (:mod:`.reading`), checked against the schema (:mod:`.schema`), the files they name
checked before a run starts (:mod:`.files`), and the ``acceleration:`` / ``ode:`` blocks parsed (:mod:`.blocks`).

Nothing here imports a model: the models read their blocks from :mod:`.blocks`.
"""

from ..errors import OptionError, report_user_errors
from .blocks import check_block
from .files import IMAGE_SUFFIXES
from .reading import (
    apply_forced_option,
    check_network,
    debug_mode_notice,
    parse_and_validate_options,
    parse_options,
    read_option_file,
    start_up_checks,
    validate_options,
)

__all__ = ['IMAGE_SUFFIXES', 'OptionError', 'apply_forced_option', 'check_block', 'check_network',
           'debug_mode_notice', 'parse_and_validate_options', 'parse_options', 'read_option_file',
           'report_user_errors', 'start_up_checks', 'validate_options']
