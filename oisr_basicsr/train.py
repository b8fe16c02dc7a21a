"""Train any registered model with BasicSR's own training pipeline.

    python -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml [--auto_resume]
    torchrun --nproc_per_node=8 -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are written under the current directory; the run holds the lock on
``experiments/<name>`` until it ends.
"""

import argparse
import os
import sys
from contextlib import ExitStack

import basicsr.train
import basicsr.utils

from .cluster import stop_on_lost_process
from .console import trained_model_line, training_console, use_quiet_console, write_console_line
from .options import report_user_errors
from .safeguards import install_basicsr_safeguards
from .startup import debug_mode_notice, parse_and_validate_options


def run(args: argparse.Namespace) -> None:
    """Run BasicSR's training pipeline with the package's option parsing and its safeguards
    (:func:`~oisr_basicsr.install_basicsr_safeguards`).

    The console is quiet (:mod:`oisr_basicsr.console`) unless ``args.verbose``; the last line names the trained
    model.

    Args:
        args: The parsed command line of ``oisr train`` (:mod:`oisr_cli.commands.train`).
    """
    install_basicsr_safeguards()
    notices = []
    parsed = {}

    def parse_options(root_path: str, is_train: bool = True):
        opt, _ = parse_and_validate_options(root_path, is_train, args, hold=held)
        notices.append(debug_mode_notice(opt))
        parsed.update(opt=opt)
        return opt, args

    def get_root_logger(*logger_args, **kwargs):
        # BasicSR makes its log file with the first call, after the options are parsed: the notice is its first line.
        logger = basicsr.utils.get_root_logger(*logger_args, **kwargs)
        use_quiet_console(logger, quiet=not args.verbose)
        for notice in filter(None, notices):
            logger.warning(notice)
        notices.clear()
        return logger

    with (report_user_errors(), ExitStack() as held, stop_on_lost_process(),
          training_console(basicsr.train, quiet=lambda: not args.verbose)):
        basicsr.train.parse_options = parse_options
        basicsr.train.get_root_logger = get_root_logger
        basicsr.train.train_pipeline(os.getcwd())
    if parsed['opt']['rank'] == 0:
        write_console_line(trained_model_line(parsed['opt']['path']['models']))


if __name__ == '__main__':
    from oisr_cli.commands.train import main  # the command line is the `oisr` command's

    sys.exit(main())
