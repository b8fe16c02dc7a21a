"""Exact resume: which training state a run resumes from, loaded safely, and where in its epoch it re-enters.

BasicSR's ``load_resume_state`` calls ``torch.cuda.current_device()`` (fails without a GPU), unpickles without
restriction and dies on a truncated latest state; its resumed run starts the saved epoch's sample order again,
seeing those samples twice, with fresh random generators. :func:`install` routes BasicSR's trainer through
:func:`load_resume_state`, restores the generators saved by
:func:`~oisr_basicsr.safeguards.checkpoint_io.save_training_state` and makes the training sampler skip the
samples already used.
"""

import os
import warnings
from collections.abc import Callable
from os import path as osp

import basicsr.train
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models.base_model import BaseModel
from basicsr.utils import check_resume, get_root_logger
from basicsr.utils.dist_util import get_dist_info

from ..checkpoints.io import SAFETENSORS_SUFFIX, check_finite, load_first_valid, restore_rng_state, safe_load


def training_states_newest_first(training_states_dir: str) -> list[str]:
    """The ``<iter>.state`` files of a folder, highest iteration first."""
    if not osp.isdir(training_states_dir):
        return []
    iters = [int(name[:-len('.state')]) for name in os.listdir(training_states_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(training_states_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


def run_device(opt: dict) -> torch.device:
    """The device a run's networks use: the current GPU when ``num_gpu`` asks for one and CUDA is there."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def load_resume_state(opt: dict) -> dict | None:
    """Replaces ``basicsr.train.load_resume_state``, which calls ``torch.cuda.current_device()`` (fails without
    a GPU), unpickles without restriction, and dies on a truncated latest state.

    With ``--auto_resume`` an unreadable state is skipped with a warning in favour of the next older one.
    """
    device = run_device(opt)
    if opt['auto_resume']:
        path, resume_state = load_auto_resume_state(opt, lambda msg: warnings.warn(msg, stacklevel=2), device)
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        resume_state = load_training_state(opt, path, device) if path else None
    if resume_state is not None:
        check_resume(opt, resume_state['iter'])
        find_resumed_networks(opt)
    return resume_state


def load_training_state(opt: dict, path: str, map_location: torch.device | str = 'cpu') -> dict:
    """A training state loaded safely (``path.trust_checkpoints`` of ``opt``) and refused if not finite."""
    trusted = bool(opt['path'].get('trust_checkpoints', False))
    return check_finite(safe_load(path, map_location=map_location, trusted=trusted), path)


def load_auto_resume_state(opt: dict, warn: Callable[[str], None],
                           map_location: torch.device | str = 'cpu') -> tuple[str | None, dict | None]:
    """The training state ``--auto_resume`` resumes from, as ``(path, state)``: the newest ``<iter>.state`` of
    ``path.training_states`` that loads; each newer one that does not (truncated, unreadable) is passed to ``warn``
    and skipped. ``(None, None)`` when none loads: a fresh start. Unsafe or non-finite states raise.
    """
    candidates = training_states_newest_first(opt['path']['training_states'])
    return load_first_valid(candidates, lambda path: load_training_state(opt, path, map_location), warn)


def find_resumed_networks(opt: dict) -> None:
    """``check_resume`` points every ``pretrain_network_*`` at ``net_*_<iter>.pth``; a run saving
    ``logger.checkpoint_format: safetensors`` wrote ``net_*_<iter>.safetensors`` instead."""
    for key, value in opt['path'].items():
        if key.startswith('pretrain_network_') and isinstance(value, str) and value.endswith('.pth'):
            alternative = value[:-len('.pth')] + SAFETENSORS_SUFFIX
            if not osp.exists(value) and osp.exists(alternative):
                opt['path'][key] = alternative


class ResumePoint:
    """Where a resumed run re-enters its epoch: the samples already used, and the generators' states.

    Args:
        epoch: The epoch the training state was saved in.
        iteration: The iteration it was saved at.
        batch_size: The training loader's batch size.
        rng_state: This process's random generators at the save, or None to leave them as they are.
    """

    def __init__(self, epoch: int, iteration: int, batch_size: int, rng_state: dict | None):
        self.epoch, self.iteration, self.batch_size, self.rng_state = epoch, iteration, batch_size, rng_state


class ResumingEnlargedSampler(EnlargedSampler):
    """BasicSR's training sampler, re-entering a resumed epoch where the interrupted run left it.

    BasicSR resumes at the start of the saved epoch's sample order, so a resumed run sees the samples of that
    epoch twice. This sampler instead skips the samples already used and restores the random generators right
    before the first new sample is made (after the DataLoader has drawn its own seed). The model's
    ``resume_training`` sets :attr:`resume_point`: the model and the sampler of BasicSR's trainer do not know
    each other.
    """

    resume_point: ResumePoint | None = None

    def __iter__(self):
        indices = list(super().__iter__())
        point = ResumingEnlargedSampler.resume_point
        if point is None or point.epoch != self.epoch:
            return iter(indices)
        ResumingEnlargedSampler.resume_point = None
        batches_per_epoch = self.num_samples // point.batch_size
        used = (point.iteration - point.epoch * batches_per_epoch) * point.batch_size
        if point.rng_state is not None:
            restore_rng_state(point.rng_state)
        return iter(indices[used:])


def _train_batch_size(opt: dict) -> int:
    # The batch size BasicSR's build_dataloader gives the training loader.
    per_gpu = opt['datasets']['train']['batch_size_per_gpu']
    return per_gpu if opt['dist'] else per_gpu * max(opt['num_gpu'], 1)


def install() -> None:
    """Route BasicSR's trainer through :func:`load_resume_state` and :class:`ResumingEnlargedSampler`, and make
    ``BaseModel.resume_training`` set the sampler's :class:`ResumePoint`."""
    basicsr.train.load_resume_state = load_resume_state
    basicsr.train.EnlargedSampler = ResumingEnlargedSampler

    original_resume_training = BaseModel.resume_training

    def resume_training(self, resume_state: dict) -> None:
        original_resume_training(self, resume_state)
        rank, world_size = get_dist_info()
        rng_states = resume_state.get('rng')
        if rng_states and len(rng_states) != world_size:
            get_root_logger().warning(f'The training state holds random states of {len(rng_states)} processes, '
                                      f'this run has {world_size}: the data order will differ from the original.')
        rng_state = rng_states[rank] if rng_states and len(rng_states) == world_size else None
        ResumingEnlargedSampler.resume_point = ResumePoint(resume_state['epoch'], resume_state['iter'],
                                                           _train_batch_size(self.opt), rng_state)

    BaseModel.resume_training = resume_training
