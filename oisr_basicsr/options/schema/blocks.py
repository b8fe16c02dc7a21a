"""The fixed blocks of an option file: ``path``, ``train``, ``val``, ``logger`` and ``dist_params``; their
registered parts (optimisers, scheduler, losses, metrics) are typed by the class each names."""

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from .base import Block
from .registered import Loss, Metric, Optimizer, Scheduler
from .values import Bool, Float, Int, NonEmptyStr, NonNegativeInt, PositiveInt


class PathOptions(Block):
    """``path``: checkpoints to start from and, set by BasicSR, the output folders."""

    pretrain_network_g: NonEmptyStr | None = None
    param_key_g: str | None = 'params'
    strict_load_g: Bool = True
    pretrain_network_d: NonEmptyStr | None = None
    param_key_d: str | None = 'params'
    strict_load_d: Bool = True
    resume_state: NonEmptyStr | None = None
    trust_checkpoints: Bool = Field(False, description='load pickled checkpoints with code; only for own files')
    experiments_root: str | None = Field(None, description='set by BasicSR')
    models: str | None = Field(None, description='set by BasicSR')
    training_states: str | None = Field(None, description='set by BasicSR')
    log: str | None = Field(None, description='set by BasicSR')
    visualization: str | None = Field(None, description='set by BasicSR')
    results_root: str | None = Field(None, description='set by BasicSR')


class TrainOptions(Block):
    """``train``: iterations, EMA, warm-up; ``optim_*``, ``scheduler`` and the ``*_opt`` losses are typed blocks."""

    model_config = ConfigDict(extra='allow')
    key_patterns: ClassVar[tuple[str, ...]] = ('optim_', )
    __pydantic_extra__: dict[str, Optimizer] = Field(init=False)
    total_iter: PositiveInt | None = Field(None, description='required for training')
    warmup_iter: Annotated[Int, Field(ge=-1)] = -1
    ema_decay: Annotated[Float, Field(ge=0, lt=1)] = 0
    scheduler: Scheduler | None = None
    pixel_opt: Loss | None = None
    perceptual_opt: Loss | None = None
    gan_opt: Loss | None = None
    net_d_iters: PositiveInt = 1
    net_d_init_iters: NonNegativeInt = 0


class ValOptions(Block):
    """``val``: how often and how to validate; ``metrics.<name>`` are typed blocks."""

    val_freq: PositiveInt | None = Field(None, description='required for training')
    save_img: Bool = False
    suffix: str | None = None
    pbar: Bool = False
    metrics: dict[str, Metric] | None = None


class WandbOptions(Block):
    project: str | None = None
    resume_id: str | None = None


class LoggerOptions(Block):
    """``logger``: logging, tensorboard and checkpoint frequency and format."""

    print_freq: PositiveInt | None = Field(None, description='required for training')
    save_checkpoint_freq: PositiveInt | None = Field(None, description='required for training')
    use_tb_logger: Bool = False
    wandb: WandbOptions | None = None
    checkpoint_format: Literal['pth', 'safetensors'] = 'pth'


class DistParamsOptions(Block):
    """``dist_params``: read by the SLURM launcher."""

    backend: Literal['nccl', 'gloo'] = 'nccl'
    port: Annotated[Int, Field(ge=1, le=65535)] | None = None

