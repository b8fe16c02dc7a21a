"""Check an option file as a run would at start, without the run: nothing is created (no experiments/ or results/
folder, no log, no lock file).

examples:
  oisr check -opt train_OISR_RK3_x4.yml
  oisr check -opt options/test_OISR_RK3_x4.yml --force_yml path:pretrain_network_g=net_g_latest.pth

A file with a train: block is checked as `oisr train` starts it, any other as `oisr test` does (--as chooses):
the schema, the files it names, the dataset pairs, that the weights fit the network, that the largest
validation or test result fits in memory, and that no other run holds the run's folder. What would stop the
run is the same `error: ...` line, with exit status 2. Otherwise the command prints the model with its
parameters and MACs, each dataset's image count and sizes, the memory the largest validation image needs,
and exits with status 0.
"""

import argparse

from ..shared_arguments import add_forced_options
from ..subcommand import Subcommand


class Check(Subcommand):
    """``oisr check``: :func:`oisr_basicsr.tools.check.run`."""

    name = 'check'
    summary = 'check an option file as a run would at start, creating nothing'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('-opt', required=True, help='the option file to check')
        add_forced_options(parser)
        parser.add_argument('--auto_resume', action='store_true', help='check it as oisr train --auto_resume would')
        parser.add_argument('--as', dest='mode', choices=('train', 'test'),
                            help='check it as oisr train or oisr test runs it (default: train if it has a train: '
                            'block)')
        # What parse_options reads of a run's command line, as a run without a launcher has it.
        parser.set_defaults(launcher='none', debug=False, local_rank=0, verbose=False)

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.check import run

        return run(args)


COMMAND = Check()
main = COMMAND.main
