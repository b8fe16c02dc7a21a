"""Prepare training and benchmark data in BasicSR's layouts (see ``oisr_basicsr.data.preparation``): the work of
``oisr prepare-data``, whose command line and help are :mod:`oisr_cli.commands.prepare_data`."""

import argparse
import sys

from ..data.preparation import make_benchmark_folders, prepare_training_data
from ..errors import UserError, error_status


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand (the command line of ``oisr prepare-data``: :mod:`oisr_cli.commands.prepare_data`);
    returns the exit status."""
    try:
        if args.command == 'train':
            outputs = prepare_training_data(args.input, args.output, args.name, args.scales, crop_size=args.crop_size,
                                            step=args.step, lmdb=args.lmdb, num_workers=args.num_workers)
        else:
            outputs = make_benchmark_folders(args.input, args.output, args.scales, num_workers=args.num_workers)
    except (OSError, ValueError, UserError) as error:
        return error_status(error)
    for output in outputs:
        print(f'created {output}')
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.prepare_data import main  # the command line is the `oisr` command's

    sys.exit(main())
