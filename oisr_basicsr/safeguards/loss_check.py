"""A non-finite loss stops training.

BasicSR trains on through a NaN loss and saves the ruined weights. :func:`install` makes every model stop at
once instead, naming the iteration and the last good training state to resume from.
"""

import torch
import torch.distributed as dist
from basicsr.models.base_model import BaseModel

from ..errors import NonFiniteLossError
from .resume import training_states_newest_first


def install() -> None:
    """Check every loss ``BaseModel.reduce_loss_dict`` receives; ``update_learning_rate`` records the iteration
    that the error names."""
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
