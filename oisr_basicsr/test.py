"""Test any registered model with BasicSR's own test pipeline.

    python -m oisr_basicsr.test -opt options/test_OISR_RK3_x4.yml

``results/`` is written under the current directory; the run holds the lock on ``results/<name>`` until
it ends.
"""

import argparse
import os
import sys
from contextlib import ExitStack
from functools import partial

import basicsr.test
import basicsr.utils

from .console import use_quiet_console
from .options import report_user_errors
from .safeguards import install_basicsr_safeguards
from .startup import parse_and_validate_options


def run(args: argparse.Namespace) -> None:
    """Run BasicSR's test pipeline with the package's option parsing and its safeguards
    (:func:`~oisr_basicsr.install_basicsr_safeguards`).

    The console shows the results and any warning (:mod:`oisr_basicsr.console`) unless ``args.verbose``.

    Args:
        args: The parsed command line of ``oisr test`` (:mod:`oisr_cli.commands.test`).
    """
    install_basicsr_safeguards()

    def get_root_logger(*logger_args, **kwargs):
        logger = basicsr.utils.get_root_logger(*logger_args, **kwargs)
        use_quiet_console(logger, quiet=not args.verbose)
        return logger

    with report_user_errors(), ExitStack() as held:
        basicsr.test.parse_options = partial(parse_and_validate_options, args=args, hold=held)
        basicsr.test.get_root_logger = get_root_logger
        basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    from oisr_cli.commands.test import main  # the command line is the `oisr` command's

    sys.exit(main())
