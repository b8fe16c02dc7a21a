"""The networks and training states ``BaseModel`` saves and loads: atomic saves, safe loads, random states.

BasicSR writes checkpoints in place (a crash mid-save destroys the previous one) and ignores a failed save, loads
networks by unpickling without restriction, and keeps no random generator in a training state, so a resumed run
draws other samples than an uninterrupted one. :func:`install` replaces ``BaseModel.save_network``,
``save_training_state`` and ``load_network`` with the functions here.
"""

from os import path as osp

import torch
import torch.distributed as dist
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info

from ..checkpoints.io import SAFETENSORS_SUFFIX, atomic_save, capture_rng_state
from ..checkpoints.weights import load_weights

# logger.checkpoint_format -> suffix of the network files a training run writes.
CHECKPOINT_SUFFIXES = {'pth': '.pth', 'safetensors': SAFETENSORS_SUFFIX}


def save_network(self: BaseModel, net: torch.nn.Module | list[torch.nn.Module], net_label: str, current_iter: int,
                 param_key: str | list[str] = 'params') -> None:
    """BaseModel's ``save_network``, saved atomically on rank 0 as ``.pth`` (BasicSR's format) or, with
    ``logger.checkpoint_format: safetensors``, as ``.safetensors``.

    Args:
        self: The model.
        net: The network, or several saved in one file.
        net_label: The file name's prefix (``net_g``).
        current_iter: The iteration in the file name; -1 names it ``latest``.
        param_key: The key of each network in the file.
    """
    if get_dist_info()[0] != 0:
        return
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError('save_network needs one param_key per network.')
    save_dict = {}
    for net_, key in zip(nets, keys, strict=True):
        state = self.get_bare_model(net_).state_dict()
        save_dict[key] = {k.removeprefix('module.'): v.cpu() for k, v in state.items()}
    label = 'latest' if current_iter == -1 else current_iter
    checkpoint_format = (self.opt.get('logger') or {}).get('checkpoint_format', 'pth')
    if checkpoint_format not in CHECKPOINT_SUFFIXES:
        raise ValueError(f'logger.checkpoint_format: {checkpoint_format!r} is not supported; '
                         f'choose one of {", ".join(CHECKPOINT_SUFFIXES)}.')
    suffix = CHECKPOINT_SUFFIXES[checkpoint_format]
    atomic_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}{suffix}'))


def save_training_state(self: BaseModel, epoch: int, current_iter: int) -> None:
    """BaseModel's ``save_training_state``, saved atomically with every rank's random generators.

    Args:
        self: The model; a model class with an ``extra_training_state()`` method adds what it returns (the fp16
            gradient scaler of ``AcceleratedSRModel``).
        epoch: The current epoch.
        current_iter: The iteration, which names the file; -1 saves nothing.
    """
    if current_iter == -1:
        return
    rank, world_size = get_dist_info()
    # Every rank has its own generators; all of them go into rank 0's file.
    rng_states = [None] * world_size
    if world_size > 1:
        dist.all_gather_object(rng_states, capture_rng_state())
    else:
        rng_states = [capture_rng_state()]
    if rank != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'rng': rng_states,
             'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers]}
    if hasattr(self, 'extra_training_state'):
        state.update(self.extra_training_state())
    atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def load_network(self: BaseModel, net: torch.nn.Module, load_path: str, strict: bool = True,
                 param_key: str | None = 'params') -> None:
    """BaseModel's ``load_network`` through the package's one reader of weights
    (:func:`~oisr_basicsr.checkpoints.weights.load_weights`): ``.pth`` or ``.safetensors`` without running code
    (unless ``path.trust_checkpoints``), refusing NaN or infinite weights and weights that are not floating point,
    naming the tensor.

    Args:
        self: The model.
        net: The network to load into.
        load_path: The checkpoint.
        strict: Whether every key must match.
        param_key: The network's key in the file (``params_ema`` falls back to ``params``); None or a file of bare
            tensors: the whole file.
    """
    logger = get_root_logger()
    net = self.get_bare_model(net)
    load_net = load_weights(load_path, param_key, network=net,
                            trusted=bool(self.opt['path'].get('trust_checkpoints', False)))
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    self._print_different_keys_loading(net, load_net, strict)
    net.load_state_dict(load_net, strict=strict)


def install() -> None:
    """Make every BasicSR model save and load with :func:`save_network`, :func:`save_training_state` and
    :func:`load_network`."""
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    BaseModel.load_network = load_network
