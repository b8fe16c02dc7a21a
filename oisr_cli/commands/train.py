"""Train any registered model with BasicSR's training pipeline (experiments/<name> in the current folder).

examples:
  oisr train -opt options/train_OISR_RK3_x4.yml --auto_resume
  oisr train -opt train_OISR_RK3_x4.yml --force_yml datasets:train:batch_size_per_gpu=8
  torchrun --nproc_per_node=8 -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml --launcher pytorch
"""

import argparse

from ..shared_arguments import add_run_arguments
from ..subcommand import Subcommand


class Train(Subcommand):
    """``oisr train``: :func:`oisr_basicsr.train.run`."""

    name = 'train'
    summary = "train a model from an option file with BasicSR's pipeline"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser)

    def run(self, args: argparse.Namespace) -> None:
        from oisr_basicsr.train import run

        run(args)


COMMAND = Train()
main = COMMAND.main
