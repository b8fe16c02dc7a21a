"""The start of a training or test run: the command line (:mod:`.command_line`), every check of its options
(:func:`validate_options`, which creates nothing) and the memory its results need (:mod:`.result_memory`).

It sits above :mod:`oisr_basicsr.options`, which reads and checks option files alone: starting a run also needs
the distributed set-up and the device (:mod:`oisr_basicsr.safeguards`), the memory estimate
(:mod:`oisr_basicsr.memory`) and the run lock (:mod:`oisr_basicsr.run_lock`).
"""

from .checks import validate_options
from .command_line import debug_mode_notice, parse_and_validate_options, parse_options

__all__ = ['debug_mode_notice', 'parse_and_validate_options', 'parse_options', 'validate_options']
