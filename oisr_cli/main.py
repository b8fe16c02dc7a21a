"""Train, test and use OISR / NODE-SR super-resolution models: oisr <subcommand> [options]."""

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from .argument_types import ArgumentParser
from .commands import SUBCOMMANDS

EXAMPLES = """examples:
  oisr options copy train_OISR_RK3_x4
  oisr train -opt train_OISR_RK3_x4.yml --auto_resume
  oisr infer -opt options/test_OISR_RK3_x4.yml --input photos/ --output sr/
  oisr quickstart --iters 600

`oisr <subcommand> --help` explains each one, with examples."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: a subcommand and everything after it, which the subcommand parses itself."""
    parser = ArgumentParser(prog='oisr', description=__doc__, epilog=EXAMPLES)
    parser.add_argument('--version', action='store_true', help="print the package's version and exit")
    commands = parser.add_subparsers(dest='subcommand', metavar='<subcommand>')
    for subcommand in SUBCOMMANDS:
        # add_help=False: `oisr NAME --help` reaches the subcommand's own parser, which has the details (and which
        # only the subcommand that runs builds).
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
    return subcommand.main(argv[1:])


if __name__ == '__main__':
    sys.exit(main())
