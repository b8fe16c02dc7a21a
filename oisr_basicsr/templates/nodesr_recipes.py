"""Write the NODE-SR option files in ``options/``.

    python scripts/generate_nodesr_options.py            # rewrite them
    python scripts/generate_nodesr_options.py --check    # exit 1 if one is out of date

Training: ``train_NODESR_{VDSR,RDN}.yml`` (the paper's recipe, Sec. 3.1).
Testing: ``test_NODESR_{VDSR,RDN}_B100.yml`` (B100 at x1.1 ... x4.0, Table 2) and
``test_NODESR_{VDSR,RDN}_benchmarks.yml`` (Set14 / B100 / Urban100 at x2, x3, x4,
Table 1, and at x6, x8, the arbitrary-scale literature's out-of-range scales).
"""

import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import sections

TRAIN_SCALES = tuple(round(1 + 0.1 * k, 1) for k in range(1, 31))
VAL_SCALES = (2.0, 2.5, 3.0, 4.0)
BENCHMARK_SCALES = (2, 3, 4, 6, 8)
BENCHMARKS = ('Set14', 'B100', 'Urban100')
# The paper's schedule (Sec. 3.1): the learning rate halved every 100k iterations, 600k in all.
MILESTONES = (100_000, 200_000, 300_000, 400_000, 500_000)
TOTAL_ITER = 600_000

# memory: measured by ``python -m benchmarks.bench_nodesr --paper-memory`` at the batch and patch size below (fp32,
# RK4 with 1 step): peak tensor memory of one training step per gradient mode and what one evaluation of f keeps
# for backprop (GiB), parameters + Adam state (MiB). tests/test_bench_nodesr_memory.py re-traces the first two.
BACKBONES = {
    'VDSR': dict(network={'type': 'NODEVDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_layer': 20},
                 gt_size=200, batch=16,
                 memory=dict(checkpoint=3.259, backprop=11.961, adjoint=3.389, evaluation=2.916, state_mib=7.7)),
    'RDN': dict(network={'type': 'NODERDN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'growth': 64,
                         'num_block': 16, 'num_layer': 8},
                gt_size=130, batch=8,
                memory=dict(checkpoint=28.670, backprop=112.355, adjoint=30.139, evaluation=27.951, state_mib=251.5)),
}

ODE_BLOCK = """ode:
  # The paper integrates with RK4 from t to 1 (its ODESolve(I(t), f, [t, 1])) and gives no step count; one
  # RK4 step over [t, 1] is what torchdiffeq does on that grid. Raise num_steps for finer solves or for more
  # intermediate states (NODESRModel.super_resolve(..., return_states=True)).
  solver: rk4
  num_steps: 1"""

METRICS = sections.metrics_section('scale', True,
                          psnr_comment='Y channel, ceil(t) pixels shaved (crop_border: scale), as in Meta-SR / NODE-SR')


def _network(network: dict) -> str:
    return '\n'.join(['network_g:'] + [f'  {key}: {value}' for key, value in network.items()])


def _scale_name(scale: float) -> str:
    return f'{float(scale):.1f}'


def _dataset(phase: str, benchmark: str, scale: float) -> str:
    return f"""  {phase}:
    name: {benchmark}_x{_scale_name(scale)}
    type: ContinuousScalePairedDataset
    dataroot_gt: datasets/{benchmark}/HR
    test_scale: {float(scale)}
    io_backend:
      type: disk"""


def _memory_comment(memory: dict) -> str:
    """The comment above ``gradient: checkpoint``: the measured peak of one training step per gradient mode."""
    text = (f"Memory: peak tensor memory of one training step at this batch (fp32, RK4 with 1 step, gradients "
            f"included; without allocator overhead or cuDNN workspaces): {memory['checkpoint']:.1f} GiB with "
            f"checkpoint, {memory['backprop']:.1f} GiB with backprop, {memory['adjoint']:.1f} GiB with adjoint, plus "
            f"{memory['state_mib']:.1f} MiB of parameters and Adam state. backprop keeps the activations "
            f"of every evaluation of f "
            f"({memory['evaluation']:.1f} GiB each, 4 per RK4 step); checkpoint keeps only the input of each "
            f"evaluation and recomputes its activations in the backward pass (exact gradients, about a third more "
            f"compute); adjoint saves no more memory than checkpoint here and its gradients are only as exact as its "
            f"backward solve.")
    return textwrap.fill(text, width=112, initial_indent='  # ', subsequent_indent='  # ')


def train_options(backbone: str) -> str:
    spec = BACKBONES[backbone]
    name = f'NODESR_{backbone}'
    val = '\n'.join(_dataset(f'val_{i + 1}', 'B100', scale) for i, scale in enumerate(VAL_SCALES))
    scales = ', '.join(str(scale) for scale in TRAIN_SCALES)
    return f"""# NODE-{backbone}: the paper's recipe (Park and Kim, ICASSP 2022, Sec. 3.1).
{sections.how_to_run(name, training=True)}
# Data: DIV2K 1-800 HR sub-images as LMDB (oisr prepare-data train); B100 HR images for validation.
# The paper's batch of {spec['batch']} is per run: with N processes set batch_size_per_gpu to {spec['batch']}/N.
# No top-level scale: BasicSR would copy it into every dataset; each dataset has its own scales.
{sections.run_settings(name, 'NODESRModel', None, training=True)}

# Fast paths, all off. precision: fp32, bf16 or fp16 (autocast for the network; the ODE state stays fp32;
# fp16 with a gradient scaler); channels_last: NHWC weights and states; compile: torch.compile, true or a mode.
{sections.ACCELERATION_BLOCK}

datasets:
  train:
    name: DIV2K
    type: ContinuousScalePairedDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub.lmdb
    io_backend:
      type: lmdb
    gt_size: {spec['gt_size']}
    use_hflip: true
    use_rot: true
    scales: [{scales}]
    num_worker_per_gpu: 6
    batch_size_per_gpu: {spec['batch']}
    dataset_enlarge_ratio: 1
    prefetch_mode: ~
{val}

{_network(spec['network'])}

{ODE_BLOCK}
{_memory_comment(spec['memory'])}
  gradient: checkpoint

{sections.training_sections(MILESTONES, TOTAL_ITER, METRICS)}"""


def test_options(backbone: str, suffix: str, title: str, datasets: list[tuple[str, float]]) -> str:
    train_name = f'NODESR_{backbone}'
    entries = '\n'.join(_dataset(f'test_{i + 1}', benchmark, scale) for i, (benchmark, scale) in enumerate(datasets))
    return f"""# NODE-{backbone}: {title}
{sections.how_to_run(f'{train_name}_{suffix}', training=False, trained_by=train_name)}
# LR images are made from the HR images on the fly (Meta-SR protocol up to x4, LIIF's above).
{sections.run_settings(f'{train_name}_{suffix}', 'NODESRModel', None, training=False)}

datasets:
{entries}

{_network(BACKBONES[backbone]['network'])}

{ODE_BLOCK}

{sections.testing_sections(train_name, False, METRICS)}"""


def all_options() -> dict[str, str]:
    """File name -> content of every NODE-SR option file."""
    files = {}
    for backbone in BACKBONES:
        files[f'train_NODESR_{backbone}.yml'] = train_options(backbone)
        files[f'test_NODESR_{backbone}_B100.yml'] = test_options(
            backbone, 'B100', 'B100 at x1.1, x1.2, ..., x4.0 (the paper\'s Table 2).',
            [('B100', scale) for scale in TRAIN_SCALES])
        files[f'test_NODESR_{backbone}_benchmarks.yml'] = test_options(
            backbone, 'benchmarks', 'Set14, B100, Urban100 at x2, x3, x4 (Table 1) and x6, x8 (out of range).',
            [(benchmark, scale) for benchmark in BENCHMARKS for scale in BENCHMARK_SCALES])
    return files


def main(argv: Sequence[str] | None = None, repository: Path = sections.CHECKOUT) -> int:
    """Write the files into ``repository`` (a checkout of this project), or check them with ``--check``."""
    return sections.write_or_check(all_options(), __doc__, argv, repository)
