"""Parameters and MACs of the generator (``network_g``) of any BasicSR option file.

    oisr complexity -opt options/train_OISR_RK3_x4.yml [--height 720 --width 1280]

MACs are counted the way the OISR and EDSR papers count them (conv weights times output pixels) for an HR
output of the given size; the network is built on the meta device, so even OISR-RK3 takes no memory.
"""

import argparse
from pathlib import Path

from ..argument_types import positive_int
from ..choices import MACS_OUTPUT_SIZE
from ..subcommand import Subcommand


class Complexity(Subcommand):
    """``oisr complexity``: :func:`oisr_basicsr.tools.complexity_report.run`."""

    name = 'complexity'
    summary = "parameters and MACs of an option file's network"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('-opt', required=True, type=Path, help='BasicSR option YAML file')
        parser.add_argument('--height', type=positive_int, default=MACS_OUTPUT_SIZE[0],
                            help=f'HR output height (default {MACS_OUTPUT_SIZE[0]})')
        parser.add_argument('--width', type=positive_int, default=MACS_OUTPUT_SIZE[1],
                            help=f'HR output width (default {MACS_OUTPUT_SIZE[1]})')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.complexity_report import run

        return run(args)


COMMAND = Complexity()
main = COMMAND.main
