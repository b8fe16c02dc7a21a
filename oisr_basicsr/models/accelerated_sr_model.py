"""BasicSR's SRModel with fast paths switched on from YAML: mixed precision, channels_last, torch.compile."""

import contextlib
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from ..options.blocks import (  # noqa: F401  (re-exported: where the acceleration options were defined)
    ACCELERATION_KEYS,
    COMPILE_MODES,
    PRECISIONS,
    AccelerationOptions,
    parse_acceleration_options,
)
from ..safeguards import checkpoint_io


def accelerate_network(net: torch.nn.Module, options: AccelerationOptions) -> torch.nn.Module:
    """Put ``net`` in the memory format and compiled form of ``options``, in place; returns ``net``.

    In place, so an optimiser built on its parameters keeps working, and ``Module.compile`` compiles only
    the forward pass, so the state_dict keys stay those of the plain network.
    """
    if options.channels_last:
        net.to(memory_format=torch.channels_last)
    if options.compile_mode:
        net.compile(mode=options.compile_mode)
    return net


@MODEL_REGISTRY.register()
class AcceleratedSRModel(SRModel):
    """BasicSR's :class:`SRModel` with the fast paths of an ``acceleration:`` block.

    Without the block it trains and tests exactly as SRModel does. With it, the
    networks' forward passes run under autocast (bf16 or fp16, losses in fp32),
    fp16 training scales the loss with :class:`torch.amp.GradScaler`, weights and
    inputs may be kept channels_last, and the networks may be compiled; see
    :class:`AccelerationOptions`. Outputs (``self.output``) are always fp32.
    """

    # Read by option checking, which must not import the models (see oisr_basicsr.options.reading).
    reads_acceleration_block = True

    def __init__(self, opt: dict):
        # Before SRModel builds anything, so that a bad option fails at once.
        self.acceleration = parse_acceleration_options(opt.get('acceleration'))
        super().__init__(opt)
        if self.device.type == 'cuda' and self.acceleration.precision == 'bf16' and not torch.cuda.is_bf16_supported():
            raise ValueError('acceleration.precision: bf16 is not supported by this GPU; use fp16 or fp32.')
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.acceleration.precision == 'fp16')
        for net in self._networks():
            accelerate_network(net, self.acceleration)

    def _networks(self) -> list[torch.nn.Module]:
        nets = [self.get_bare_model(self.net_g)]
        if hasattr(self, 'net_g_ema'):
            nets.append(self.net_g_ema)
        return nets

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast at the configured precision; a no-op for fp32."""
        return self.acceleration.autocast(self.device.type)

    def to_memory_format(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in the configured memory format."""
        if self.acceleration.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        self.lq = self.to_memory_format(self.lq)

    def training_forward(self) -> tuple[torch.Tensor, dict]:
        """The network's output for the fed batch, and extra entries for the training log."""
        return self.net_g(self.lq), {}

    def before_optimizer_step(self) -> None:
        """Runs between the backward pass and the optimiser step (the gradients are scaled under fp16)."""

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        with self.autocast():
            output, extra_log = self.training_forward()
        self.output = output.float()

        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                l_total += l_percep
                loss_dict['l_percep'] = l_percep
            if l_style is not None:
                l_total += l_style
                loss_dict['l_style'] = l_style
        loss_dict.update(extra_log)

        self.grad_scaler.scale(l_total).backward()
        self.before_optimizer_step()
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()

        self.log_dict = self.reduce_loss_dict(loss_dict)

        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self) -> None:
        with self.autocast():
            super().test()
        self.output = self.output.float()

    def extra_training_state(self) -> dict:
        """Saved with the optimisers and schedulers: the fp16 gradient scaler's scale and counters."""
        return {'grad_scaler': self.grad_scaler.state_dict()} if self.grad_scaler.is_enabled() else {}

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        # The package's save also where its safeguards are not installed: BasicSR's own would drop the scaler.
        checkpoint_io.save_training_state(self, epoch, current_iter)

    def resume_training(self, resume_state: dict) -> None:
        super().resume_training(resume_state)
        if self.grad_scaler.is_enabled() and 'grad_scaler' in resume_state:
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])

