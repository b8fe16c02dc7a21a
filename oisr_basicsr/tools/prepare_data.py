"""Prepare training and benchmark data in BasicSR's layouts (see ``oisr_basicsr.data.preparation``).

DIV2K training data, for the paths ``options/train_*.yml`` read::

    oisr prepare-data train --input datasets/DIV2K/DIV2K_train_HR --output datasets/DIV2K \\
        --name DIV2K_train --scales 2 3 4

creates, in ``datasets/DIV2K``::

    DIV2K_train_HR_sub/                  480x480 crops of every HR image, 0001_s001.png ...
    DIV2K_train_LR_bicubic/X2_sub/       their MATLAB-bicubic x2 downsamplings, same names (also X3_sub, X4_sub)
    DIV2K_train_HR_sub.lmdb              the same images as LMDBs (skipped with --no-lmdb)
    DIV2K_train_LR_bicubic_X2_sub.lmdb   (also _X3_sub.lmdb, _X4_sub.lmdb)

Benchmarks (Set5, Set14, B100, Urban100, Manga109), from a folder of HR images::

    oisr prepare-data benchmark --input path/to/Set5/HR --output datasets/Set5 --scales 2 3 4

creates ``datasets/Set5/GTmod12`` and ``datasets/Set5/LRbicx2`` (``LRbicx3``, ``LRbicx4``), for
PairedImageDataset. The shipped test options do not need them: they read ``datasets/Set5/HR`` itself
(BenchmarkHRDataset, which crops to a multiple of the scale rather than of 12, as the papers do).

Existing outputs are never overwritten, and every output stays inside ``--output`` (a ``--name`` such as
``../x`` is refused). Errors are printed as ``error: <message>`` with exit status 2.
"""

import argparse
import sys

from ..data.preparation import make_benchmark_folders, prepare_training_data
from ..errors import error_status
from .arguments import ArgumentParser, integer_scale, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = ArgumentParser(prog='oisr prepare-data', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)

    train = commands.add_parser('train', help='HR sub-images, their LR versions and LMDBs of both')
    train.add_argument('--input', required=True, help='folder of HR images, e.g. datasets/DIV2K/DIV2K_train_HR')
    train.add_argument('--output', required=True, help='folder that receives the outputs, e.g. datasets/DIV2K')
    train.add_argument('--name', required=True, help='prefix of the output names, e.g. DIV2K_train')
    train.add_argument('--scales', type=integer_scale, nargs='+', required=True,
                       help='downsampling factors, e.g. 2 3 4')
    train.add_argument('--crop-size', type=positive_int, default=480, help='side of the HR sub-images (default: 480)')
    train.add_argument('--step', type=positive_int, default=240, help='distance between crop positions (default: 240)')
    train.add_argument('--no-lmdb', dest='lmdb', action='store_false', help='write the image folders only')

    benchmark = commands.add_parser('benchmark', help='GTmod12 and LRbicx{s} folders of a test set')
    benchmark.add_argument('--input', required=True, help='folder of HR images, e.g. Set5/HR')
    benchmark.add_argument('--output', required=True, help='folder that receives the outputs, e.g. datasets/Set5')
    benchmark.add_argument('--scales', type=integer_scale, nargs='+', default=[2, 3, 4],
                           help='downsampling factors, each dividing 12 (default: 2 3 4)')

    for command in (train, benchmark):
        command.add_argument('--num-workers', type=positive_int, default=None,
                             help='processes to use (default: every CPU)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen subcommand; returns the exit status."""
    args = parse_args(argv)
    try:
        if args.command == 'train':
            outputs = prepare_training_data(args.input, args.output, args.name, args.scales, crop_size=args.crop_size,
                                            step=args.step, lmdb=args.lmdb, num_workers=args.num_workers)
        else:
            outputs = make_benchmark_folders(args.input, args.output, args.scales, num_workers=args.num_workers)
    except (OSError, ValueError) as error:
        return error_status(error)
    for output in outputs:
        print(f'created {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
