"""Train any registered model with BasicSR's own training pipeline.

    python -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml [--auto_resume]
    torchrun --nproc_per_node=8 -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are written under the current directory.
"""

import os

import basicsr.train

from . import compat
from .options import parse_and_validate_options, report_user_errors


def main() -> None:
    compat.normalize_local_rank_argument()
    basicsr.train.parse_options = parse_and_validate_options
    with report_user_errors():
        basicsr.train.train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
