import math

import torch
import torch.distributed as dist
from basicsr.utils.registry import MODEL_REGISTRY

from .accelerated_sr_model import AcceleratedSRModel
from .node_solver import ODESolution, parse_ode_options
from .nodesr import NODESR


@MODEL_REGISTRY.register()
class NODESRModel(AcceleratedSRModel):
    """NODE-SR (Park and Kim, "Progressive image super-resolution via neural differential equation", ICASSP 2022).

    The network ``network_g`` is the dynamics ``f(I, t)`` (e.g. ``NODEVDSR``,
    ``NODERDN``, ``NODEOISR``); the model solves ``dI/dt = f(I, t)`` from
    ``I(t0)``, the bicubic upscale of the LR image by its scale ``t0``, down to
    ``t = 1``, the HR image. Everything else (optimisers, schedulers, EMA,
    saving, resuming, logging, tensorboard) is BasicSR's :class:`SRModel`, with the
    fast paths of :class:`~oisr_basicsr.models.accelerated_sr_model.AcceleratedSRModel`
    (under mixed precision the network runs in bf16 / fp16, the ODE state stays fp32).

    Options beyond SRModel's:

    * ``acceleration``: ``precision``, ``channels_last``, ``compile``, see
      :class:`~oisr_basicsr.models.accelerated_sr_model.AccelerationOptions`.

    * ``ode``: the solver, see :class:`~oisr_basicsr.models.node_solver.ODEOptions`
      (``solver``, ``num_steps`` or ``step_size``, ``rtol``, ``atol``, ``gradient``).
    * ``val.metrics.<name>.crop_border: scale`` shaves ``ceil(t)`` pixels, ``t``
      being the validation dataset's ``test_scale`` (the Meta-SR / NODE-SR protocol).

    Data items hold ``gt``, ``lq`` and ``scale`` (one ``t0`` per sample). When
    ``lq`` already has ``gt``'s size it is taken as ``I(t0)`` (training patches);
    otherwise it is the real LR image and is upscaled with
    :func:`~oisr_basicsr.data.resize.upscale_lr` to ``gt``'s size, or to
    ``floor(h t) x floor(w t)`` without ``gt``.

    ``I(t0)`` and the integration are those of :class:`~oisr_basicsr.models.nodesr.NODESR`, the NODE-SR
    inference the tools run too. The log holds ``nfe``, the network evaluations of the last training forward.
    """

    # Read by option checking, which must not import the models (see oisr_basicsr.options.schema).
    resolves_scale_crop_border = True
    # Read through oisr_basicsr.model_capabilities: inference runs NODESR for any real scale, not network_g at one.
    serves_any_scale = True
    reads_ode_block = True

    def __init__(self, opt: dict):
        # Before SRModel builds anything, so that a bad option fails at once.
        self.ode = parse_ode_options(opt.get('ode'))
        super().__init__(opt)

    def feed_data(self, data: dict) -> None:
        """Take a batch: ``lq``, ``scale`` and, optionally, ``gt``; form ``I(t0)`` (``self.i0``)."""
        if 'scale' not in data:
            raise KeyError("NODESRModel needs each data item's scale factor under 'scale'; use a dataset that "
                           'provides it, such as ContinuousScalePairedDataset.')
        self.lq = data['lq'].to(self.device)
        self.scale = torch.as_tensor(data['scale'], dtype=torch.float32).reshape(-1).to(self.device)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
            size = tuple(self.gt.shape[-2:])
        else:
            size = None
        if size is not None and tuple(self.lq.shape[-2:]) == size:
            self.i0 = self.to_memory_format(self.lq)  # a training patch: I(t0) already
        else:
            self.i0 = self.nodesr(self.net_g).initial_state(self.lq, self.scale, size)

    def nodesr(self, net: torch.nn.Module) -> NODESR:
        """The NODE-SR inference module of ``net`` with this model's solver and memory format.

        Args:
            net: ``self.net_g`` or ``self.net_g_ema``; a DDP / DataParallel wrapper is unwrapped (the solver
                calls the network several times per forward, which DDP's gradient hooks do not allow;
                :meth:`before_optimizer_step` averages the gradients itself).
        """
        return NODESR(self.get_bare_model(net), self.ode, channels_last=self.acceleration.channels_last)

    def solve(self, net: torch.nn.Module, return_states: bool = False) -> ODESolution:
        """Integrate ``net`` from the fed ``I(t0)`` to ``t = 1``.

        Args:
            net: ``self.net_g`` or ``self.net_g_ema`` (see :meth:`nodesr`).
            return_states: Keep the intermediate states.

        Returns:
            The solution.
        """
        return self.nodesr(net).solve(self.i0, self.scale, return_states)

    def training_forward(self) -> tuple[torch.Tensor, dict]:
        solution = self.solve(self.net_g)
        return solution.final, {'nfe': torch.tensor(float(solution.nfe), device=self.device)}

    def before_optimizer_step(self) -> None:
        if self.opt['dist']:
            self._average_gradients()

    def _average_gradients(self) -> None:
        """What DDP's hooks would do: average the gradients over the processes (one all-reduce)."""
        params = [p for p in self.get_bare_model(self.net_g).parameters() if p.requires_grad]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for p, synced in zip(params, flat.split([g.numel() for g in grads]), strict=True):
            p.grad = synced.view_as(p).clone()

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        net.eval()
        with torch.no_grad(), self.autocast():
            self.output = self.solve(net).final.float()
        if net is self.net_g:
            self.net_g.train()

    def super_resolve(self,
                      lq: torch.Tensor,
                      scale: float,
                      size: tuple[int, int] | None = None,
                      return_states: bool = False) -> ODESolution:
        """Super-resolve LR images by ``scale`` with the EMA network if there is one.

        Args:
            lq: ``N x C x h x w`` LR images in [0, 1].
            scale: The factor ``t0 >= 1``, one for the batch.
            size: Output ``(H, W)``; default ``floor(h t0) x floor(w t0)``.
            return_states: Also return the intermediate states ``I(t_i)`` at the solver's steps (the
                progressive restoration of the paper's Fig. 2) and their times.

        Returns:
            The solution; ``final`` is the SR batch, not clipped.
        """
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            solution = self.nodesr(net).super_resolve(lq.to(self.device), float(scale), size, return_states)
        net.train(was_training)
        return solution

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        metrics = self.opt['val'].get('metrics')
        if not metrics or not any(m.get('crop_border') == 'scale' for m in metrics.values()):
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
            return
        dataset_opt = dataloader.dataset.opt
        if 'test_scale' not in dataset_opt:
            raise KeyError(f"val.metrics: crop_border 'scale' needs the dataset's test_scale; dataset "
                           f"{dataset_opt['name']!r} has none.")
        # Rounded first: a float such as 3.0000000001 must shave 3 pixels, not 4.
        shave = math.ceil(round(float(dataset_opt['test_scale']), 6))
        self.opt['val']['metrics'] = {
            name: {**m, 'crop_border': shave} if m.get('crop_border') == 'scale' else m
            for name, m in metrics.items()
        }
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.opt['val']['metrics'] = metrics
