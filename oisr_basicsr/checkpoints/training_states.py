"""Reading the training states a run saved (``<iter>.state``): safely, finite values only, and for
``--auto_resume`` the newest one that loads."""

import os
from collections.abc import Callable
from os import path as osp

import torch

from .io import check_finite, load_first_valid, safe_load


def training_states_newest_first(training_states_dir: str) -> list[str]:
    """The ``<iter>.state`` files of a folder, highest iteration first."""
    if not osp.isdir(training_states_dir):
        return []
    iters = [int(name[:-len('.state')]) for name in os.listdir(training_states_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(training_states_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


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
