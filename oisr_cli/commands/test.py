"""Test any registered model with BasicSR's test pipeline (results/<name> under the current folder).

examples:
  oisr test -opt options/test_OISR_RK3_x4.yml
  oisr test -opt options/test_NODESR_VDSR_B100.yml --force_yml path:pretrain_network_g=net_g_latest.pth
"""

import argparse

from ..shared_arguments import add_run_arguments
from ..subcommand import Subcommand


class Test(Subcommand):
    """``oisr test``: :func:`oisr_basicsr.test.run`."""

    name = 'test'
    summary = 'PSNR / SSIM of a trained model on the benchmarks of an option file'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser)

    def run(self, args: argparse.Namespace) -> None:
        from oisr_basicsr.test import run

        run(args)


COMMAND = Test()
main = COMMAND.main
