"""Arguments several subcommands share: those of ``oisr train`` and ``oisr test`` (BasicSR's own, as
``basicsr.utils.options.parse_options`` reads them, plus ``--verbose``), ``--force_yml``, and the option file and
weights of the tools that load a network."""

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add BasicSR's training / test arguments and ``--verbose`` to ``parser``."""
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    # --local-rank: what torch.distributed.launch passes today; BasicSR's own parser knows only --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_forced_options(parser)
    parser.add_argument('--verbose', action='store_true',
                        help="BasicSR's own console: its banner, the option dump and every log record (which the "
                        'log file always holds)')


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-opt`` (the option file whose ``network_g`` the tool builds) and ``--weights`` to ``parser``."""
    parser.add_argument('-opt', required=True, help='BasicSR option file; its network_g and path.pretrain_network_g')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')


def add_forced_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--force_yml`` to ``parser``."""
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override options, parsed as YAML data. Example: train:ema_decay=0.999')
