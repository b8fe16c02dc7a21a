"""Train a small OISR model on sample images for a few minutes on the CPU and compare it with bicubic.

    oisr quickstart [--iters 600] [--workdir quickstart_output]

Everything runs through the package's real entry points: the sample photos
that scikit-image ships become an HR/LR training set and a held-out test set,
``oisr_basicsr.train`` trains an OISR-LF model (x2) with BasicSR's pipeline,
and ``oisr_basicsr.test`` evaluates it and plain bicubic with BasicSR's PSNR /
SSIM (Y channel, 2 pixels shaved). It prints the training's progress, the table,
where the trained model and its option file are, and the commands to try next.
"""

import argparse
from pathlib import Path

from ..argument_types import positive_int
from ..subcommand import Subcommand


class Quickstart(Subcommand):
    """``oisr quickstart``: :func:`oisr_basicsr.tools.quickstart.run_quickstart`."""

    name = 'quickstart'
    summary = 'train a small OISR model on sample images on the CPU and compare it with bicubic'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--workdir', type=Path, default=Path('quickstart_output'))
        parser.add_argument('--iters', type=positive_int, default=600, help='training iterations (default: 600)')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.quickstart import run_quickstart

        return run_quickstart(args)


COMMAND = Quickstart()
main = COMMAND.main
