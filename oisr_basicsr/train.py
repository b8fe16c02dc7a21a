"""Train any registered model with BasicSR's own training pipeline.

    python -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml [--auto_resume]
    torchrun --nproc_per_node=8 -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are written under the current directory; the run holds the lock on
``experiments/<name>`` until it ends.
"""

import os
from collections.abc import Sequence
from contextlib import ExitStack

import basicsr.train
import basicsr.utils

from . import compat
from .console import trained_model_line, training_console, use_quiet_console, write_console_line
from .options import debug_mode_notice, parse_and_validate_options, report_user_errors


def main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's training pipeline with the package's option parsing (``sys.argv[1:]`` when argv is None).

    The console is quiet (:mod:`oisr_basicsr.console`) unless ``--verbose`` is given; the last line names the
    trained model.
    """
    argv = None if argv is None else list(argv)
    compat.normalize_local_rank_argument(argv)
    notices = []
    parsed = {}

    def parse_options(root_path: str, is_train: bool = True):
        opt, args = parse_and_validate_options(root_path, is_train, argv=argv, hold=held)
        notices.append(debug_mode_notice(opt))
        parsed.update(opt=opt, args=args)
        return opt, args

    def get_root_logger(*args, **kwargs):
        # BasicSR makes its log file with the first call, after the options are parsed: the notice is its first line.
        logger = basicsr.utils.get_root_logger(*args, **kwargs)
        use_quiet_console(logger, quiet=not parsed['args'].verbose)
        for notice in filter(None, notices):
            logger.warning(notice)
        notices.clear()
        return logger

    with (report_user_errors(), ExitStack() as held,
          training_console(basicsr.train, quiet=lambda: not parsed['args'].verbose)):
        basicsr.train.parse_options = parse_options
        basicsr.train.get_root_logger = get_root_logger
        basicsr.train.train_pipeline(os.getcwd())
    if parsed['opt']['rank'] == 0:
        write_console_line(trained_model_line(parsed['opt']['path']['models']))


if __name__ == '__main__':
    main()
