"""Parameters and MACs of the generator (``network_g``) of any BasicSR option file: the work of
``oisr complexity``, whose command line and help are :mod:`oisr_cli.commands.complexity`."""

import argparse
import math
import sys

from ..complexity import network_complexity
from ..errors import OptionError, error_status
from ..inference.loading import load_option_file, option_scale


def run(args: argparse.Namespace) -> int:
    """Print the counts (the command line of ``oisr complexity``: :mod:`oisr_cli.commands.complexity`); returns the
    exit status."""
    try:
        opt = load_option_file(args.opt)
        network_opt, scale = opt['network_g'], option_scale(opt)
    except OptionError as error:
        return error_status(error)
    counts = network_complexity(network_opt, scale, (args.height, args.width))
    lr_height, lr_width = math.ceil(args.height / scale), math.ceil(args.width / scale)
    print(f'network_g: {network_opt["type"]}, x{scale}, {args.width}x{args.height} output '
          f'({lr_width}x{lr_height} input)')
    print(f'parameters: {counts["params"]:,}')
    print(f'conv parameters: {counts["conv_params"]:,}')
    print(f'MACs: {counts["macs"] / 1e9:.1f} G ({counts["macs"]:,})')
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.complexity import main  # the command line is the `oisr` command's

    sys.exit(main())
