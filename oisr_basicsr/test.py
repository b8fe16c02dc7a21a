"""Test any registered model with BasicSR's own test pipeline.

    python -m oisr_basicsr.test -opt options/test_OISR_RK3_x4.yml

``results/`` is written under the current directory; the run holds the lock on ``results/<name>`` until
it ends.
"""

import os
from collections.abc import Sequence
from contextlib import ExitStack

import basicsr.test
import basicsr.utils

from .console import use_quiet_console
from .options import parse_and_validate_options, report_user_errors


def main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's test pipeline with the package's option parsing (``sys.argv[1:]`` when argv is None).

    The console shows the results and any warning (:mod:`oisr_basicsr.console`) unless ``--verbose`` is given.
    """
    parsed = {}

    def parse_options(root_path: str, is_train: bool = False):
        opt, args = parse_and_validate_options(root_path, is_train, argv=argv, hold=held)
        parsed.update(args=args)
        return opt, args

    def get_root_logger(*args, **kwargs):
        logger = basicsr.utils.get_root_logger(*args, **kwargs)
        use_quiet_console(logger, quiet=not parsed['args'].verbose)
        return logger

    with report_user_errors(), ExitStack() as held:
        basicsr.test.parse_options = parse_options
        basicsr.test.get_root_logger = get_root_logger
        basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
