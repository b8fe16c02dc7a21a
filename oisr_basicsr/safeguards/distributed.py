"""Distributed runs: the process group, DDP on the CPU, one tensorboard writer.

BasicSR's ``init_dist`` hard-codes NCCL and ``cuda.set_device(rank % num_gpus)`` (a ZeroDivisionError without
GPUs, and the wrong device on every node but the first), its ``model_to_device`` wraps DDP with ``device_ids``
even on a CPU, and every rank writes tensorboard files into the same folder. :func:`install` replaces them.
"""

import os

import basicsr.train
import basicsr.utils.dist_util
import basicsr.utils.options
import torch
from basicsr.models.base_model import BaseModel
from torch.nn.parallel import DistributedDataParallel

from ..cluster import first_slurm_node, start_process_group
from ..errors import DistributedRunError

# What each launcher's process group is made from: torch's env:// rendezvous, or SLURM's task description.
LAUNCHER_VARIABLES = {'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                      'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')}
LAUNCHER_STARTERS = {'pytorch': 'torchrun (or python -m torch.distributed.launch)', 'slurm': 'srun'}


def init_dist(launcher: str, backend: str | None = None, **kwargs) -> None:
    """Replaces BasicSR's ``init_dist``, which hard-codes NCCL and ``cuda.set_device(rank % num_gpus)`` (a
    ZeroDivisionError without GPUs, and the wrong device on every node but the first).

    Uses NCCL with one device per local rank where GPUs exist, gloo otherwise. ``launcher`` is ``pytorch``
    (torchrun or ``torch.distributed.launch``) or ``slurm``; ``kwargs`` may hold ``port`` (slurm). A launcher whose
    environment variables (:data:`LAUNCHER_VARIABLES`) are missing is refused, naming them all, before anything
    else. The group starts with :func:`~oisr_basicsr.cluster.start_process_group`: bounded in time, and safe after a
    restart.
    """
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'--launcher: {launcher!r} is not supported; choose none, pytorch or slurm.')
    missing = [name for name in LAUNCHER_VARIABLES[launcher] if name not in os.environ]
    if missing:
        raise DistributedRunError(f'--launcher {launcher}: the environment lacks {", ".join(missing)}, which '
                          f'{LAUNCHER_STARTERS[launcher]} sets; start the run with it, or use --launcher none.')
    import torch.multiprocessing as mp
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if launcher == 'slurm':
        _slurm_environment(kwargs.pop('port', None))
    use_cuda = torch.cuda.is_available()
    if backend is None or (backend == 'nccl' and not use_cuda):
        backend = 'nccl' if use_cuda else 'gloo'
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    start_process_group(backend)


def _slurm_environment(port: int | None) -> None:
    proc_id = int(os.environ['SLURM_PROCID'])
    if not os.environ.get('MASTER_ADDR'):
        os.environ['MASTER_ADDR'] = first_slurm_node(os.environ['SLURM_NODELIST'])
    os.environ['MASTER_PORT'] = str(port) if port is not None else os.environ.get('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(proc_id % max(torch.cuda.device_count(), 1)))


def model_to_device(self: BaseModel, net: torch.nn.Module) -> torch.nn.Module:
    """BaseModel's ``model_to_device``, wrapping DDP without ``device_ids`` on the CPU.

    Args:
        self: The model.
        net: The network, moved to the model's device and wrapped for several processes or GPUs.
    """
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids,
                                      find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


def install() -> None:
    """Use :func:`init_dist` and :func:`model_to_device`; let only rank 0 write tensorboard."""
    basicsr.utils.dist_util.init_dist = init_dist
    basicsr.utils.options.init_dist = init_dist
    BaseModel.model_to_device = model_to_device

    init_tb_loggers = basicsr.train.init_tb_loggers

    def init_tb_loggers_on_rank_zero(opt: dict):
        return init_tb_loggers(opt) if opt['rank'] == 0 else None

    basicsr.train.init_tb_loggers = init_tb_loggers_on_rank_zero
