"""The start of a training or test run: from its parsed command line (:mod:`.command_line`), every check of its
options (:func:`start_up_checks`, :func:`validate_options` and :func:`check_run_inputs`, which create nothing) and
the memory its results need (:mod:`.result_memory`).

It sits above :mod:`oisr_basicsr.options`, which reads and checks option files alone: starting a run also needs
the distributed set-up and the device (:mod:`oisr_basicsr.safeguards`), the memory estimate
(:mod:`oisr_basicsr.memory`) and the run lock (:mod:`oisr_basicsr.run_lock`).
"""

from .checks import CheckedDataset, check_run_inputs, validate_options
from .command_line import debug_mode_notice, parse_and_validate_options, parse_options, start_up_checks

__all__ = ['CheckedDataset', 'check_run_inputs', 'debug_mode_notice', 'parse_and_validate_options', 'parse_options',
           'start_up_checks', 'validate_options']
