"""Every change this package makes to BasicSR 1.4.2, one function each.

Some make BasicSR run on today's torch, torchvision and Python; the others make
a long run safe to kill and resume. Each is explained in its docstring and
covered by a test. :func:`apply` runs them all; ``import oisr_basicsr`` calls
it before BasicSR is first imported.
"""

import functools
import os
import re
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from os import path as osp

import torch
import torch.distributed as dist

from .checkpoints.io import (
    SAFETENSORS_SUFFIX,
    atomic_save,
    capture_rng_state,
    check_finite,
    load_first_valid,
    restore_rng_state,
    safe_load,
)
from .checkpoints.weights import load_weights
from .errors import NonFiniteLossError
from .outputs import atomic_output, write_image

# logger.checkpoint_format -> suffix of the network files a training run writes.
CHECKPOINT_SUFFIXES = {'pth': '.pth', 'safetensors': SAFETENSORS_SUFFIX}


def alias_functional_tensor() -> None:
    """torchvision 0.17 removed ``transforms.functional_tensor``, which ``basicsr.data.degradations`` imports."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        from torchvision.transforms import functional
        module = types.ModuleType(name)
        module.rgb_to_grayscale = functional.rgb_to_grayscale
        sys.modules[name] = module


@functools.total_ordering
class LooseVersion:
    """The part of ``distutils.version.LooseVersion`` that BasicSR uses: ordering versions such as '0.29.1+cu130'
    by their numeric and alphabetic components."""

    def __init__(self, version: str):
        self.version = version
        self.components = [int(part) if part.isdigit() else part for part in re.findall(r'\d+|[a-z]+', version.lower())]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LooseVersion) and self.components == other.components

    def __lt__(self, other: 'LooseVersion') -> bool:
        return self.components < other.components

    def __repr__(self) -> str:
        return f'LooseVersion({self.version!r})'


def provide_distutils_version() -> None:
    """``basicsr.archs.arch_util`` imports ``distutils.version.LooseVersion``. Python 3.12 removed distutils;
    setuptools (a dependency) brings a copy back, except with ``SETUPTOOLS_USE_DISTUTILS=stdlib`` or a setuptools
    without it: then :class:`LooseVersion` stands in."""
    try:
        import distutils.version  # noqa: F401
    except ImportError:
        package = sys.modules.setdefault('distutils', types.ModuleType('distutils'))
        module = types.ModuleType('distutils.version')
        module.LooseVersion = LooseVersion
        package.version = module
        sys.modules['distutils.version'] = module


def normalize_local_rank_argument(argv: list[str] | None = None) -> None:
    """``torch.distributed.launch`` now passes ``--local-rank``; BasicSR's parser knows only ``--local_rank``."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            argv[i] = arg.replace('--local-rank', '--local_rank', 1)


# ----------------------------------------------------------------------------------------------------------------
# Resume


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
    from basicsr.utils import check_resume

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


def patch_resume() -> None:
    """Route BasicSR's trainer through :func:`load_resume_state`."""
    import basicsr.train
    basicsr.train.load_resume_state = load_resume_state


def patch_experiment_dirs() -> None:
    """BasicSR's ``make_exp_dirs`` makes a folder of every ``path:`` value but a few it knows; this package's
    ``path.trust_checkpoints`` (a boolean) would crash every run that sets it (``os.makedirs(True)``)."""
    import basicsr.test
    import basicsr.train

    make_exp_dirs = basicsr.train.make_exp_dirs

    def make_exp_dirs_of_paths(opt: dict) -> None:
        make_exp_dirs({**opt, 'path': {k: v for k, v in opt['path'].items() if k != 'trust_checkpoints'}})

    basicsr.train.make_exp_dirs = basicsr.test.make_exp_dirs = make_exp_dirs_of_paths


# ----------------------------------------------------------------------------------------------------------------
# Distributed


def init_dist(launcher: str, backend: str | None = None, **kwargs) -> None:
    """Replaces BasicSR's ``init_dist``, which hard-codes NCCL and ``cuda.set_device(rank % num_gpus)`` (a
    ZeroDivisionError without GPUs, and the wrong device on every node but the first).

    Uses NCCL with one device per local rank where GPUs exist, gloo otherwise. ``launcher`` is ``pytorch``
    (torchrun or ``torch.distributed.launch``) or ``slurm``; ``kwargs`` may hold ``port`` (slurm).
    """
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'--launcher: {launcher!r} is not supported; choose none, pytorch or slurm.')
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
    dist.init_process_group(backend=backend)


def _slurm_environment(port: int | None) -> None:
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ.setdefault('MASTER_ADDR', subprocess.getoutput(
        f'scontrol show hostname {os.environ["SLURM_NODELIST"]} | head -n1'))
    os.environ['MASTER_PORT'] = str(port) if port is not None else os.environ.get('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(proc_id % max(torch.cuda.device_count(), 1)))


def patch_distributed() -> None:
    """Use :func:`init_dist`; wrap DDP without ``device_ids`` on the CPU; let only rank 0 write tensorboard;
    validate without deadlocking the other ranks."""
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel

    basicsr.utils.dist_util.init_dist = init_dist
    basicsr.utils.options.init_dist = init_dist

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids,
                                          find_unused_parameters=self.opt.get('find_unused_parameters', False))
        elif self.opt['num_gpu'] > 1:
            net = torch.nn.DataParallel(net)
        return net

    BaseModel.model_to_device = model_to_device

    init_tb_loggers = basicsr.train.init_tb_loggers

    def init_tb_loggers_on_rank_zero(opt: dict):
        return init_tb_loggers(opt) if opt['rank'] == 0 else None

    basicsr.train.init_tb_loggers = init_tb_loggers_on_rank_zero

    def validation(self, dataloader, current_iter, tb_logger, save_img: bool = False) -> None:
        # BasicSR validates on rank 0 through the DDP wrapper, whose forward joins a collective (buffer broadcast)
        # that no other rank enters: a hang, or a crash once they exit. Validate the bare network, then meet.
        if not self.opt['dist']:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
            return
        wrapped = self.net_g
        self.net_g = self.get_bare_model(wrapped)
        try:
            self.dist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.net_g = wrapped
        dist.barrier()

    BaseModel.validation = validation


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


def patch_checkpoints() -> None:
    """Atomic saves (BasicSR writes in place and ignores a failed save), ``weights_only`` loading, and the
    random generators' states in every training state, so that a resumed run repeats an uninterrupted one.

    Networks are saved as ``.pth`` (BasicSR's format) or, with ``logger.checkpoint_format: safetensors``, as
    ``.safetensors``; loading reads either and refuses NaN or infinite weights, naming the tensor."""
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import get_dist_info

    def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
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

    def save_training_state(self, epoch: int, current_iter: int) -> None:
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
        # A model class may keep more (the fp16 gradient scaler of AcceleratedSRModel).
        if hasattr(self, 'extra_training_state'):
            state.update(self.extra_training_state())
        atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    original_resume_training = BaseModel.resume_training

    def resume_training(self, resume_state: dict) -> None:
        original_resume_training(self, resume_state)
        rank, world_size = get_dist_info()
        rng_states = resume_state.get('rng')
        if rng_states and len(rng_states) != world_size:
            get_root_logger().warning(f'The training state holds random states of {len(rng_states)} processes, '
                                      f'this run has {world_size}: the data order will differ from the original.')
        rng_state = rng_states[rank] if rng_states and len(rng_states) == world_size else None
        EnlargedSampler.resume_point = _ResumePoint(resume_state['epoch'], resume_state['iter'],
                                                    _train_batch_size(self.opt), rng_state)

    def load_network(self, net, load_path: str, strict: bool = True, param_key: str | None = 'params') -> None:
        logger = get_root_logger()
        net = self.get_bare_model(net)
        load_net = load_weights(load_path, param_key, network=net,
                                trusted=bool(self.opt['path'].get('trust_checkpoints', False)))
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, load_net, strict)
        net.load_state_dict(load_net, strict=strict)

    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    BaseModel.resume_training = resume_training
    BaseModel.load_network = load_network
    _patch_sampler_resume(EnlargedSampler)


class _ResumePoint:
    """Where a resumed run re-enters its epoch: the samples already used, and the generators' states."""

    def __init__(self, epoch: int, iteration: int, batch_size: int, rng_state: dict | None):
        self.epoch, self.iteration, self.batch_size, self.rng_state = epoch, iteration, batch_size, rng_state


def _train_batch_size(opt: dict) -> int:
    # The batch size BasicSR's build_dataloader gives the training loader.
    per_gpu = opt['datasets']['train']['batch_size_per_gpu']
    return per_gpu if opt['dist'] else per_gpu * max(opt['num_gpu'], 1)


def _patch_sampler_resume(sampler_class: type) -> None:
    """BasicSR resumes at the start of the saved epoch's sample order, so a resumed run sees the samples of that
    epoch twice. The sampler instead skips the samples already used and restores the random generators right
    before the first new sample is made (after the DataLoader has drawn its own seed)."""
    sampler_class.resume_point = None
    original_iter = sampler_class.__iter__

    def __iter__(self):
        indices = list(original_iter(self))
        point = sampler_class.resume_point
        if point is None or point.epoch != self.epoch:
            return iter(indices)
        sampler_class.resume_point = None
        batches_per_epoch = self.num_samples // point.batch_size
        used = (point.iteration - point.epoch * batches_per_epoch) * point.batch_size
        if point.rng_state is not None:
            restore_rng_state(point.rng_state)
        return iter(indices[used:])

    sampler_class.__iter__ = __iter__


# ----------------------------------------------------------------------------------------------------------------
# Non-finite loss


def patch_loss_check() -> None:
    """BasicSR trains on through a NaN loss and saves the ruined weights; stop at once instead, naming the
    iteration and the last good training state to resume from."""
    from basicsr.models.base_model import BaseModel

    original_update = BaseModel.update_learning_rate
    original_reduce = BaseModel.reduce_loss_dict

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        self._loss_check_iter = current_iter
        original_update(self, current_iter, warmup_iter)

    def reduce_loss_dict(self, loss_dict):
        bad = {name: float(value.mean()) for name, value in loss_dict.items() if not torch.isfinite(value).all()}
        stop = bool(bad)
        if self.opt['dist']:
            # Decided together, or the ranks whose loss is fine would wait forever for the one that stopped.
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag)
            stop = flag.item() > 0
        if stop:
            iteration = getattr(self, '_loss_check_iter', None)
            states = training_states_newest_first(self.opt['path'].get('training_states', ''))
            last_good = states[0] if states else 'none saved yet'
            losses = ', '.join(f'{name} = {value}' for name, value in bad.items()) or 'a loss on another process'
            raise NonFiniteLossError(
                f'Non-finite loss at iteration {iteration} ({losses}); training stopped. Last good training state: '
                f'{last_good}. Lower the learning rate or check the data, then resume with --auto_resume.')
        return original_reduce(self, loss_dict)

    BaseModel.update_learning_rate = update_learning_rate
    BaseModel.reduce_loss_dict = reduce_loss_dict


def patch_image_errors() -> None:
    """BasicSR's paired dataset dies on an unreadable or truncated image with ``'NoneType' object has no
    attribute 'astype'``; name the files instead."""
    from basicsr.data.paired_image_dataset import PairedImageDataset

    original_getitem = PairedImageDataset.__getitem__

    def __getitem__(self, index: int) -> dict:
        try:
            return original_getitem(self, index)
        except (AttributeError, TypeError, OSError) as error:
            paths = self.paths[index]
            raise OSError(f'Cannot read the image pair {paths["gt_path"]} and {paths["lq_path"]} '
                          f'(unreadable or truncated?): {error}') from error

    PairedImageDataset.__getitem__ = __getitem__


def patch_output_writes() -> None:
    """BasicSR's ``imwrite`` (validation images) and ``copy_opt_file`` write in place, through any symbolic
    link found at the target; write them with :func:`~oisr_basicsr.outputs.atomic_output` instead."""
    import basicsr.train
    import basicsr.utils
    import basicsr.utils.img_util
    from basicsr.utils.dist_util import master_only

    original_imwrite = basicsr.utils.img_util.imwrite

    def imwrite(img, file_path: str, params=None, auto_mkdir: bool = True) -> None:
        if auto_mkdir:
            os.makedirs(osp.dirname(osp.abspath(file_path)), exist_ok=True)
        write_image(file_path, img, params)

    # The models import it by name (``from basicsr.utils import imwrite``): replace every such reference.
    for module in [basicsr.utils, basicsr.utils.img_util, *(m for name, m in list(sys.modules.items())
                                                              if name.startswith('basicsr.') and m is not None)]:
        if getattr(module, 'imwrite', None) is original_imwrite:
            module.imwrite = imwrite

    @master_only
    def copy_opt_file(opt_file: str, experiments_root: str) -> None:
        with open(opt_file, encoding='utf-8') as file:
            text = file.read()
        header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n\n'
        with atomic_output(osp.join(experiments_root, osp.basename(opt_file))) as file:
            file.write((header + text).encode('utf-8'))

    basicsr.train.copy_opt_file = copy_opt_file


_APPLIED = False


def apply() -> None:
    """Apply every fix once."""
    global _APPLIED
    alias_functional_tensor()
    provide_distutils_version()
    if _APPLIED:
        return
    patch_resume()
    patch_experiment_dirs()
    patch_distributed()
    patch_checkpoints()
    patch_loss_check()
    patch_image_errors()
    patch_output_writes()
    _APPLIED = True
