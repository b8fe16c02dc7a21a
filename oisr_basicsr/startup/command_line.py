"""The start of ``oisr train`` and ``oisr test`` from their parsed command line: BasicSR's ``parse_options`` around
the package's safe option reading and its one option schema, then every start-up check and the run's lock.

The checks run once, right after the file is parsed, before any dataset, network or log folder is made.
"""

import argparse
import os
import random
from contextlib import ExitStack

import torch
from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info

from ..cluster import restarted_by_launcher
from ..options import SEED_MAX, apply_forced_option, check_option_schema, options_as_read, read_option_file
from ..run_lock import lock_run_folders
from ..safeguards.distributed import init_dist
from .checks import CheckedDataset, check_run_inputs


def parse_options(root_path: str, is_train: bool, args: argparse.Namespace) -> tuple[dict, argparse.Namespace]:
    """BasicSR's ``parse_options`` (its options dict, from its command line), reading the file with
    :func:`~oisr_basicsr.options.read_option_file`, applying ``--force_yml`` with
    :func:`~oisr_basicsr.options.apply_forced_option` and checking the result against the option schema; the dict
    holds the values as the schema read them (:func:`~oisr_basicsr.options.options_as_read`).

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training (``experiments/<name>``) or testing (``results/<name>``).
        args: BasicSR's command line, parsed (``oisr train`` / ``oisr test``'s parser,
            :mod:`oisr_cli.shared_arguments`): ``opt``, ``launcher``, ``auto_resume``, ``debug``, ``force_yml`` and
            ``verbose``.
    """
    opt = read_option_file(args.opt)
    # Forced values before the seed and the checks: a forced manual_seed seeds the run, and the options as the
    # run will use them are checked against the schema before anything below indexes or rewrites them.
    for entry in args.force_yml or ():
        apply_forced_option(opt, entry)
    opt = options_as_read(opt, check_option_schema(opt, training=is_train))

    if args.launcher == 'none':
        opt['dist'] = False
        if args.verbose:  # BasicSR's console says it; the quiet one does not
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

    # A group that torchrun restarted, or a requeued SLURM job, resumes without the flag.
    opt['auto_resume'] = args.auto_resume or (opt['dist'] and restarted_by_launcher())
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


def start_up_checks(root_path: str, is_train: bool, args: argparse.Namespace
                    ) -> tuple[dict, argparse.Namespace, dict[str, CheckedDataset]]:
    """Every check a run makes at start before it takes its lock, creating nothing (no folder, log or lock file):
    :func:`parse_options`, which checks the options against the schema once, then :func:`~.checks.check_run_inputs`.
    A run then locks its folders (:func:`parse_and_validate_options`); ``oisr check`` asks whether another run holds
    them instead.

    Args:
        root_path, is_train, args: As for :func:`parse_options`.

    Returns:
        The options, the command line and what was read of each dataset (:func:`~.checks.check_run_inputs`).
    """
    opt, args = parse_options(root_path, is_train, args)
    return opt, args, check_run_inputs(opt)


def parse_and_validate_options(root_path: str, is_train: bool, args: argparse.Namespace,
                               hold: ExitStack | None = None) -> tuple[dict, argparse.Namespace]:
    """:func:`start_up_checks`, then the run's lock on its folders.

    Args:
        root_path: Folder under which ``experiments/`` or ``results/`` are made.
        is_train: Training or testing.
        args: The parsed command line, as for :func:`parse_options`.
        hold: Where the run lock is kept until the run ends (see :func:`~oisr_basicsr.run_lock.lock_run_folders`);
            None keeps it until the process exits.
    """
    opt, args, _ = start_up_checks(root_path, is_train, args)
    lock_run_folders(opt, hold)
    return opt, args
