"""What the two option generators (:mod:`.oisr_recipes`, :mod:`.nodesr_recipes`) write alike, and their
command line: the acceleration block, the metrics, the sections BasicSR's trainer and tester read after the
network, and writing or checking the files."""

import argparse
import dataclasses
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from ..options.blocks import AccelerationOptions
from ..outputs import write_text

# The repository checkout this package lies in: the generators maintain its files.
CHECKOUT = Path(__file__).resolve().parents[2]

# The acceleration: block with every switch at its default, i.e. off.
ACCELERATION_BLOCK = 'acceleration:\n' + '\n'.join(
    f'  {field.name}: {str(field.default).lower() if isinstance(field.default, bool) else field.default}'
    for field in dataclasses.fields(AccelerationOptions))


def how_to_run(name: str, training: bool, trained_by: str | None = None) -> str:
    """The header comment that tells the reader of ``train_<name>.yml`` / ``test_<name>.yml`` (a user's copy from
    ``oisr options copy``, say) how to run it: the command, the folder it runs in and what it writes there.

    Args:
        name: The run's name, the file name without ``train_`` / ``test_`` and ``.yml``.
        training: A training file (else a test file).
        trained_by: For a test file, the name of the training run whose latest weights it reads; None: none.
    """
    if training:
        where = (f'Run it in the folder that holds datasets/; checkpoints and logs go to experiments/{name}/ there '
                 f'(--auto_resume continues from the latest state; with N GPUs, launch it with torchrun):')
        commands = [f'oisr train -opt train_{name}.yml',
                    f'torchrun --nproc_per_node=N -m oisr_basicsr.train -opt train_{name}.yml --launcher pytorch']
    else:
        weights = (f' and the weights that train_{trained_by}.yml trained '
                   f'(experiments/{trained_by}/models/net_g_latest.pth)' if trained_by else '')
        where = f'Run it in the folder that holds datasets/{weights}; the results go to results/{name}/ there:'
        commands = [f'oisr test -opt test_{name}.yml']
    # The commands on lines of their own, to be copied whole.
    return '\n'.join([textwrap.fill(where, width=112, initial_indent='# ', subsequent_indent='# ',
                                    break_long_words=False, break_on_hyphens=False)]
                     + [f'#   {command}' for command in commands])


def run_settings(name: str, model_type: str, scale: int | None, training: bool) -> str:
    """The top-level keys of a training or test run: ``scale`` only where given (BasicSR copies it into every
    dataset), the GPUs BasicSR finds, and a fixed seed."""
    scale_line = '' if scale is None else f'\nscale: {scale}'
    return f"""name: {name}
model_type: {model_type}{scale_line}
num_gpu: auto  # 0 {'trains' if training else 'tests'} on the CPU
manual_seed: 0"""


def metrics_section(crop_border: int | str, test_y_channel: bool, psnr_comment: str = '') -> str:
    """``val.metrics``: PSNR and SSIM with BasicSR's functions, ``crop_border`` pixels shaved on every side."""
    y = str(test_y_channel).lower()
    comment = f'  # {psnr_comment}' if psnr_comment else ''
    return f"""  metrics:
    psnr:{comment}
      type: calculate_psnr
      crop_border: {crop_border}
      test_y_channel: {y}
    ssim:
      type: calculate_ssim
      crop_border: {crop_border}
      test_y_channel: {y}"""


def training_sections(milestones: Sequence[int], total_iter: int, metrics: str) -> str:
    """``path`` to ``dist_params`` of a training file: Adam at 1e-4 halved at each of ``milestones``, an L1 loss,
    validation with ``metrics`` and a checkpoint every 5,000 iterations."""
    return f"""path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0
  optim_g:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.999]
    eps: !!float 1e-8
  scheduler:
    type: MultiStepLR
    milestones: [{', '.join(str(milestone) for milestone in milestones)}]
    gamma: 0.5
  total_iter: {total_iter}
  warmup_iter: -1
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float 5e3
  save_img: false
{metrics}

logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

dist_params:
  backend: nccl
  port: 29500
"""


def testing_sections(experiment: str | None, save_img: bool, metrics: str) -> str:
    """``path`` and ``val`` of a test file: the latest weights of the training run ``experiment`` (None: a network
    without weights), measured with ``metrics``."""
    weights = (f'experiments/{experiment}/models/net_g_latest.pth\n  param_key_g: params' if experiment
               else '~')
    return f"""path:
  pretrain_network_g: {weights}
  strict_load_g: true

val:
  save_img: {str(save_img).lower()}
  suffix: ~
{metrics}
"""


def write_or_check(files: dict[str, str], description: str, argv: Sequence[str] | None = None,
                   repository: Path = CHECKOUT) -> int:
    """The generators' command line: write ``files`` into the repository's ``options/`` (a build copies them into
    the package, for ``oisr options list`` / ``copy`` after a pip install), or with ``--check`` return 1 naming
    every file that differs from what would be written; returns the exit status.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='only report files that differ')
    args = parser.parse_args(argv)
    stale = []
    for file_name, content in files.items():
        path = repository / 'options' / file_name
        if args.check:
            if not path.is_file() or path.read_text() != content:
                stale.append(str(path.relative_to(repository)))
        else:
            write_text(path, content)
    if stale:
        print('out of date: ' + ', '.join(stale), file=sys.stderr)
        return 1
    return 0
