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

from .cluster import stop_on_lost_process
from .options import debug_mode_notice, parse_and_validate_options, report_user_errors
from .safeguards import install_basicsr_safeguards
from .safeguards.distributed import normalize_local_rank_argument


def main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's training pipeline with the package's option parsing (``sys.argv[1:]`` when argv is None)
    and its safeguards (:func:`~oisr_basicsr.install_basicsr_safeguards`)."""
    install_basicsr_safeguards()
    argv = None if argv is None else list(argv)
    normalize_local_rank_argument(argv)
    notices = []

    def parse_options(root_path: str, is_train: bool = True):
        opt, args = parse_and_validate_options(root_path, is_train, argv=argv, hold=held)
        notices.append(debug_mode_notice(opt))
        return opt, args

    def get_root_logger(*args, **kwargs):
        # BasicSR makes its log file with the first call, after the options are parsed: the notice is its first line.
        logger = basicsr.utils.get_root_logger(*args, **kwargs)
        for notice in filter(None, notices):
            logger.warning(notice)
        notices.clear()
        return logger

    with report_user_errors(), ExitStack() as held, stop_on_lost_process():
        basicsr.train.parse_options = parse_options
        basicsr.train.get_root_logger = get_root_logger
        basicsr.train.train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
