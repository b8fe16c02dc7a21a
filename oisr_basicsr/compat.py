"""Everything BasicSR 1.4.2 needs to run on today's torch, torchvision and Python.

Each fix is one function, explained in its docstring and covered by
``tests/test_compat.py``. :func:`apply` runs them all; ``import oisr_basicsr``
calls it before BasicSR is first imported.
"""

import os
import sys
import types
from os import path as osp

import torch


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


def latest_training_state(training_states_dir: str) -> str | None:
    """The ``<iter>.state`` file with the highest iteration in a folder, or None."""
    if not osp.isdir(training_states_dir):
        return None
    iters = [int(name[:-len('.state')]) for name in os.listdir(training_states_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return osp.join(training_states_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt: dict) -> dict | None:
    """Replaces ``basicsr.train.load_resume_state``, which calls ``torch.cuda.current_device()`` (fails
    without a GPU) and looks for ``--auto_resume`` states relative to the working directory."""
    from basicsr.utils import check_resume

    if opt['auto_resume']:
        resume_state_path = latest_training_state(opt['path']['training_states'])
        if resume_state_path is not None:
            opt['path']['resume_state'] = resume_state_path
    else:
        resume_state_path = opt['path'].get('resume_state')
    if resume_state_path is None:
        return None
    use_cuda = opt.get('num_gpu', 0) != 0 and torch.cuda.is_available()
    device = torch.device('cuda', torch.cuda.current_device()) if use_cuda else torch.device('cpu')
    resume_state = torch.load(resume_state_path, map_location=device)
    check_resume(opt, resume_state['iter'])
    return resume_state


def patch_resume() -> None:
    """Route BasicSR's trainer through :func:`load_resume_state`."""
    import basicsr.train
    basicsr.train.load_resume_state = load_resume_state


def normalize_local_rank_argument(argv: list[str] | None = None) -> None:
    """``torch.distributed.launch`` now passes ``--local-rank``; BasicSR's parser knows only ``--local_rank``."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            argv[i] = arg.replace('--local-rank', '--local_rank', 1)


def apply() -> None:
    """Apply every fix; safe to call more than once."""
    alias_functional_tensor()
    patch_resume()
