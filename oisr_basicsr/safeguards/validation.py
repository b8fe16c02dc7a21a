"""Validation of a distributed run without a deadlock.

BasicSR validates on rank 0 through the DDP wrapper, whose forward joins a collective (buffer broadcast) that no
other rank enters: a hang, or a crash once they exit. :func:`install` makes ``BaseModel.validation`` validate the
bare network and then meet the other ranks.
"""

import torch.distributed as dist
from basicsr.models.base_model import BaseModel
from torch.utils.data import DataLoader


def validation(self: BaseModel, dataloader: DataLoader, current_iter: int, tb_logger, save_img: bool = False) -> None:
    """BaseModel's ``validation``; in a distributed run, on the bare network, followed by a barrier.

    Args:
        self: The model.
        dataloader: The validation set's loader.
        current_iter: The iteration, for the log and the saved images.
        tb_logger: BasicSR's tensorboard writer, or None.
        save_img: Whether to save the output images.
    """
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


def install() -> None:
    """Make every BasicSR model validate with :func:`validation`."""
    BaseModel.validation = validation
