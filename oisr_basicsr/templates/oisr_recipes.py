"""Write the option files in ``options/`` from the paper's model table.

    python scripts/generate_options.py            # rewrite options/
    python scripts/generate_options.py --check    # exit 1 if one of them is out of date

The models come from :data:`oisr_basicsr.archs.oisr_arch.PAPER_MODELS`, so the
YAML files and the network definitions cannot drift apart (a test runs
``--check``).
"""

from collections.abc import Sequence
from pathlib import Path

from ..archs.oisr_arch import PAPER_MODELS
from . import sections

SCALES = (2, 3, 4)
BENCHMARKS = ('Set5', 'Set14', 'B100', 'Urban100')
BENCHMARK_NOTE = ('Benchmarks are read from their HR images alone (datasets/<name>/HR); BenchmarkHRDataset '
                  'crops them to a\n# multiple of the scale and makes the MATLAB-bicubic LR images on the fly.')

MODEL_TYPE = "AcceleratedSRModel  # BasicSR's SRModel plus the acceleration switches below"

# The paper's recipe (Sec. 4.2): an EDSR-PyTorch "epoch" is 1000 iterations.
TOTAL_ITER = 800_000
MILESTONES = (250_000, 500_000, 750_000)
LR_PATCH = 48
BATCH = 16

# Table 1: every variant has the conv count of EDSR-s (16 blocks x 2 convs).
ABLATIONS = {
    'EDSR_s': dict(scheme='euler', g_variant='edsr', num_block=16, learnable_coefficients=False),
    'LF_s_G1': dict(scheme='lf', g_variant='v1', num_block=8),
    'LF_s_G2': dict(scheme='lf', g_variant='v2', num_block=8),
    'LF_s_G3': dict(scheme='lf', g_variant='v3', num_block=4),
    'RK2_s_G1': dict(scheme='rk2', g_variant='v1', num_block=16),
    'RK2_s_G2': dict(scheme='rk2', g_variant='v2', num_block=16),
    'RK2_s_G3': dict(scheme='rk2', g_variant='v3', num_block=8),
}


def _file_name(model: str) -> str:
    return model.replace('-', '_')


def _network(arch: dict, scale: int) -> str:
    lines = ['network_g:', '  type: OISR', '  num_in_ch: 3', '  num_out_ch: 3',
             f'  num_feat: {arch.get("num_feat", 64)}', f'  num_block: {arch["num_block"]}', f'  upscale: {scale}',
             f'  scheme: {arch["scheme"]}', f'  g_variant: {arch["g_variant"]}']
    if 'learnable_coefficients' in arch:
        lines.append(f'  learnable_coefficients: {str(arch["learnable_coefficients"]).lower()}')
    lines += ['  img_range: 255.', '  rgb_mean: [0.4488, 0.4371, 0.4040]']
    return '\n'.join(lines)


def _paired(phase: str, name: str, gt: str, lq: str) -> str:
    return f"""  {phase}:
    name: {name}
    type: PairedImageDataset
    dataroot_gt: {gt}
    dataroot_lq: {lq}
    io_backend:
      type: disk"""


def _benchmark(phase: str, name: str, protocol: str | None = None) -> str:
    protocol_line = f'\n    protocol: {protocol}' if protocol else ''
    return f"""  {phase}:
    name: {name}
    type: BenchmarkHRDataset
    dataroot_gt: datasets/{name}/HR{protocol_line}
    io_backend:
      type: disk"""


def _benchmarks(protocol: str | None = None) -> str:
    return '\n'.join(_benchmark(f'test_{i + 1}', bench, protocol) for i, bench in enumerate(BENCHMARKS))


def train_options(name: str, title: str, arch: dict, scale: int, val: str, metrics: str) -> str:
    return f"""# {title}, x{scale}: the paper's recipe (OISR, Sec. 4.2).
{sections.how_to_run(name, training=True)}
# Data: DIV2K 1-800 as LMDB, made by oisr prepare-data train (see oisr prepare-data --help).
# The paper's batch of {BATCH} is per run: with N processes set
# batch_size_per_gpu to {BATCH}/N (e.g. --force_yml datasets:train:batch_size_per_gpu=2 for 8 GPUs).
{sections.run_settings(name, MODEL_TYPE, scale, training=True)}

# Fast paths, all off (off is exactly SRModel). precision: fp32, bf16 or fp16 (autocast; fp16 with a
# gradient scaler); channels_last: NHWC weights and batches; compile: torch.compile, true or a mode.
{sections.ACCELERATION_BLOCK}

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub.lmdb
    dataroot_lq: datasets/DIV2K/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb
    filename_tmpl: '{{}}'
    io_backend:
      type: lmdb
    gt_size: {LR_PATCH * scale}
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: {BATCH}
    dataset_enlarge_ratio: 100
    prefetch_mode: ~
{val}

{_network(arch, scale)}

{sections.training_sections(MILESTONES, TOTAL_ITER, metrics)}"""


def test_options(model: str, scale: int) -> str:
    name = f'OISR_{_file_name(model)}_x{scale}'
    return f"""# OISR-{model}, x{scale}: PSNR / SSIM on the Y channel, {scale} pixels shaved (OISR, Sec. 4.1).
{sections.how_to_run(name, training=False, trained_by=name)}
# {BENCHMARK_NOTE}
{sections.run_settings(name, 'SRModel', scale, training=False)}

datasets:
{_benchmarks()}

{_network(PAPER_MODELS[model], scale)}

{sections.testing_sections(name, True, sections.metrics_section(scale, True))}"""


def bicubic_options(scale: int) -> str:
    return f"""# Bicubic upsampling, x{scale}: the baseline row of the paper's tables, through the same test pipeline.
{sections.how_to_run(f'Bicubic_x{scale}', training=False)}
# {BENCHMARK_NOTE}
# protocol: matlab_y measures on the 8-bit Y channel with an unrounded LR, as the SRCNN / VDSR MATLAB scripts
# did for the published bicubic rows; it reproduces them to 0.01 dB. With protocol: rgb (the default, used for
# the networks) bicubic measures 0.01-0.09 dB higher.
name: Bicubic_x{scale}
model_type: SRModel
scale: {scale}
num_gpu: 0  # no parameters: the CPU is as good as any
manual_seed: 0

datasets:
{_benchmarks('matlab_y')}

network_g:
  type: Bicubic
  upscale: {scale}

{sections.testing_sections(None, False, sections.metrics_section(scale, True))}"""


def all_options() -> dict[str, str]:
    """File name -> content of every generated option file."""
    files = {}
    for model, arch in PAPER_MODELS.items():
        for scale in SCALES:
            name = f'OISR_{_file_name(model)}_x{scale}'
            val = _benchmark('val', 'Set5')
            files[f'train_{name}.yml'] = train_options(name, f'OISR-{model}', arch, scale, val,
                                                       sections.metrics_section(scale, True))
            files[f'test_{name}.yml'] = test_options(model, scale)
    for scale in SCALES:
        files[f'test_Bicubic_x{scale}.yml'] = bicubic_options(scale)
    # Table 1 validates on DIV2K 801-900 in RGB with 6 + scale pixels shaved.
    val = _paired('val', 'DIV2K_valid', 'datasets/DIV2K/DIV2K_valid_HR', 'datasets/DIV2K/DIV2K_valid_LR_bicubic/X2')
    for variant, arch in ABLATIONS.items():
        name = f'ablation_{variant}_x2'
        title = f'Table 1 ablation {variant.replace("_", "-")}'
        files[f'train_{name}.yml'] = train_options(name, title, arch, 2, val, sections.metrics_section(8, False))
    return files


def main(argv: Sequence[str] | None = None, repository: Path = sections.CHECKOUT) -> int:
    """Write the files into ``repository`` (a checkout of this project), or check them with ``--check``."""
    return sections.write_or_check(all_options(), __doc__, argv, repository)
