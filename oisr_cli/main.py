"""Train, test and use OISR / NODE-SR super-resolution models: oisr <subcommand> [options]."""

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from .subcommand import Subcommand

SUBCOMMANDS = (
    Subcommand('train', "train a model from an option file with BasicSR's pipeline", 'oisr_basicsr.train'),
    Subcommand('test', 'PSNR / SSIM of a trained model on the benchmarks of an option file', 'oisr_basicsr.test'),
    Subcommand('infer', 'super-resolve your own images with a trained model', 'oisr_basicsr.tools.infer'),
    Subcommand('convert', "convert the OISR authors' checkpoints to this package's layout",
               'oisr_basicsr.tools.convert'),
    Subcommand('export', 'export a trained model to ONNX, checked against PyTorch', 'oisr_basicsr.tools.export_onnx'),
    Subcommand('compare', 'compare models on benchmarks: PSNR, SSIM, parameters, MACs, time',
               'oisr_basicsr.tools.compare'),
    Subcommand('complexity', "parameters and MACs of an option file's network", 'oisr_basicsr.tools.complexity_report'),
    Subcommand('prepare-data', "make DIV2K training data and benchmark folders in BasicSR's layouts",
               'oisr_basicsr.tools.prepare_data'),
    Subcommand('plot-scales', 'PSNR of a NODE-SR model against the scale factor, as a plot and CSV',
               'oisr_basicsr.tools.plot_scales'),
    Subcommand('quickstart', 'train a small OISR model on sample images on the CPU and compare it with bicubic',
               'oisr_basicsr.tools.quickstart'),
    Subcommand('options', 'list the option templates shipped with the package, or copy one to edit',
               'oisr_basicsr.tools.option_templates'),
)
EXAMPLES = """examples:
  oisr options copy train_OISR_RK3_x4
  oisr train -opt train_OISR_RK3_x4.yml --auto_resume
  oisr infer -opt options/test_OISR_RK3_x4.yml --input photos/ --output sr/
  oisr quickstart --iters 600

`oisr <subcommand> --help` explains each one, with examples."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: a subcommand and everything after it, which the subcommand parses itself."""
    parser = argparse.ArgumentParser(prog='oisr', description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='store_true', help="print the package's version and exit")
    commands = parser.add_subparsers(dest='subcommand', metavar='<subcommand>')
    for subcommand in SUBCOMMANDS:
        # add_help=False: `oisr NAME --help` reaches the subcommand's own parser, which has the details.
        commands.add_parser(subcommand.name, help=subcommand.summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oisr`` (``sys.argv[1:]`` when argv is None); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv[:1])
    if args.version:
        # From the installed metadata: importing oisr_basicsr for it would import torch.
        print(metadata.version('oisr-basicsr'))
        return 0
    if args.subcommand is None:
        parser.print_help()
        return 2
    subcommand = next(command for command in SUBCOMMANDS if command.name == args.subcommand)
    return subcommand.run(argv[1:])


if __name__ == '__main__':
    sys.exit(main())
