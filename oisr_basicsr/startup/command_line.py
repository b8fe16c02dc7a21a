"""The command line of ``oisr train`` and ``oisr test``: BasicSR's ``parse_options`` around the package's safe
option reading and its one option schema, then every start-up check and the run's lock.

The checks run once, right after the file is parsed, before any dataset, network or log folder is made.
"""

import argparse
import os
import random
from collections.abc import Sequence
from contextlib import ExitStack

import torch
from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info

from ..options import SEED_MAX, apply_forced_option, check_option_schema, options_as_read, read_option_file
from ..run_lock import lock_run_folders
from ..safeguards.distributed import init_dist
from .checks import validate_options

TRAIN_HELP = """Train any registered model with BasicSR's training pipeline (experiments/<name> in the current folder).

examples:
  oisr train -opt options/train_OISR_RK3_x4.yml --auto_resume
  oisr train -opt train_OISR_RK3_x4.yml --force_yml datasets:train:batch_size_per_gpu=8
  torchrun --nproc_per_node=8 -m oisr_basicsr.train -opt options/train_OISR_RK3_x4.yml --launcher pytorch
"""
TEST_HELP = """Test any registered model with BasicSR's test pipeline (results/<name> under the current folder).

examples:
  oisr test -opt options/test_OISR_RK3_x4.yml
  oisr test -opt options/test_NODESR_VDSR_B100.yml --force_yml path:pretrain_network_g=net_g_latest.pth
"""


def _build_argument_parser(is_train: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='oisr train' if is_train else 'oisr test',
                                     description=TRAIN_HELP if is_train else TEST_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override options, parsed as YAML data. Example: train:ema_decay=0.999')
    return parser


def parse_options(root_path: str, is_train: bool = True, argv: Sequence[str] | None = None
                  ) -> tuple[dict, argparse.Namespace]:
    """BasicSR's ``parse_options`` (same arguments, same options dict), reading the file with
    :func:`~oisr_basicsr.options.read_option_file`, applying ``--force_yml`` with
    :func:`~oisr_basicsr.options.apply_forced_option` and checking the result against the option schema; the dict
    holds the values as the schema read them (:func:`~oisr_basicsr.options.options_as_read`).

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training (``experiments/<name>``) or testing (``results/<name>``).
        argv: Command-line arguments (``sys.argv[1:]`` when None).
    """
    args = _build_argument_parser(is_train).parse_args(argv)
    opt = read_option_file(args.opt)
    # Forced values before the seed and the checks: a forced manual_seed seeds the run, and the options as the
    # run will use them are checked against the schema before anything below indexes or rewrites them.
    for entry in args.force_yml or ():
        apply_forced_option(opt, entry)
    opt = options_as_read(opt, check_option_schema(opt, training=is_train))

    if args.launcher == 'none':
        opt['dist'] = False
        print('Disable distributed.', flush=True)
    else:
        opt['dist'] = True
        if args.launcher == 'slurm' and 'dist_params' in opt:
            init_dist(args.launcher, **opt['dist_params'])
        else:
            init_dist(args.launcher)
    opt['rank'], opt['world_size'] = get_dist_info()

    seed = opt.get('manual_seed')
    if seed is None:
        seed = random.randint(1, 10000)
        opt['manual_seed'] = seed
    set_random_seed((seed + opt['rank']) % (SEED_MAX + 1))  # NumPy takes no seed beyond SEED_MAX

    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt.get('num_gpu') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()

    for phase, dataset in opt['datasets'].items():
        # several datasets of one phase are named val_1, val_2, test_1, ...
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for root in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(root) is not None:
                dataset[root] = os.path.expanduser(dataset[root])
    path_opt = opt['path']
    for key, value in path_opt.items():
        if value is not None and ('resume_state' in key or 'pretrain_network' in key):
            path_opt[key] = os.path.expanduser(value)

    if is_train:
        experiments_root = os.path.join(root_path, 'experiments', opt['name'])
        path_opt.update(experiments_root=experiments_root, models=os.path.join(experiments_root, 'models'),
                        training_states=os.path.join(experiments_root, 'training_states'), log=experiments_root,
                        visualization=os.path.join(experiments_root, 'visualization'))
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = os.path.join(root_path, 'results', opt['name'])
        path_opt.update(results_root=results_root, log=results_root,
                        visualization=os.path.join(results_root, 'visualization'))
    return opt, args


# What parse_options changes, as BasicSR does, when the run's name contains 'debug'.
DEBUG_MODE_RULE = ("BasicSR's debug mode is on because the name {name!r} contains 'debug': validation and "
                   'checkpoints every 8 iterations, a log line every iteration, no tensorboard or wandb. '
                   'Choose a name without "debug" to train normally.')


def debug_mode_notice(opt: dict) -> str | None:
    """The announcement of BasicSR's debug mode for a training run whose name switches it on, else None."""
    if opt.get('is_train') and 'debug' in opt['name']:
        return DEBUG_MODE_RULE.format(name=opt['name'])
    return None


def parse_and_validate_options(root_path: str, is_train: bool = True, argv: Sequence[str] | None = None,
                               hold: ExitStack | None = None) -> tuple[dict, argparse.Namespace]:
    """:func:`parse_options` followed by :func:`~.checks.validate_options`, then the run's lock on its folders.

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training or testing.
        argv: Command-line arguments (``sys.argv[1:]`` when None).
        hold: Where the run lock is kept until the run ends (see :func:`~oisr_basicsr.run_lock.lock_run_folders`);
            None keeps it until the process exits.
    """
    opt, args = parse_options(root_path, is_train=is_train, argv=argv)
    validate_options(opt)
    lock_run_folders(opt, hold)
    return opt, args
