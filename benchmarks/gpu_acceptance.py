"""GPU acceptance in one command: every GPU claim of the package checked or measured, one Markdown table.

    python -m benchmarks.gpu_acceptance                   # on a CUDA machine; budgeted for 8 minutes on one H200
    python -m benchmarks.gpu_acceptance --dry-run         # every section on the CPU, tiny sizes (25 s of CPU time)

Sections (``--sections`` picks some):

* ``pytest``: the CUDA-marked tests, ``pytest -m cuda`` (resize on CUDA equals the CPU, AMP training steps,
  channels_last, compile, NODE-SR gradient modes, NCCL training under torchrun with one process per GPU);
* ``amp``: one training step of OISR-LF-s and OISR-RK2-s under bf16 and fp16 autocast against fp32 from the same
  weights and batch (relative error of the loss and of the whole gradient, bounds in :data:`AMP_BOUNDS`), then
  ``AMP_STEPS`` steps that must stay finite;
* ``throughput``: training images/s of OISR-LF-s, OISR-RK2-s and OISR-RK3 against BasicSR's EDSR-baseline and EDSR
  at the paper's batch (16 LR patches of 48x48, x2) in fp32, bf16, bf16 + channels_last and bf16 + channels_last +
  compile (``benchmarks/bench_train_step.py``'s training step), and the fraction of the GPU's peak dense bf16
  throughput it reaches: 6 FLOPs per forward MAC per image (forward 2, backward 4), MACs from
  ``oisr_basicsr.complexity.count_macs``;
* ``nodesr-memory``: the real peak CUDA memory of one NODE-SR training step (RK4, one step) at the paper's sizes
  (``options/train_NODESR_{VDSR,RDN}.yml``) per gradient mode, against the figure traced on fake tensors
  (``benchmarks/bench_nodesr.py``); a step whose traced figure does not fit in the free memory is not run;
* ``table1``: EDSR-s, OISR-LF-s and OISR-RK2-s (the paper's Table 1 models) trained from the same seed for
  ``--table1-iters`` iterations on patches of the shared training images, then Set5 x2 PSNR (paper protocol)
  next to bicubic's.

``--dry-run`` runs every section on the CPU with tiny networks, batches and iteration counts, so the
script is exercised by the test suite; its figures mean nothing. Exit status 0 when every check passes, 1 when
one fails.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
from basicsr.archs.edsr_arch import EDSR

from benchmarks import bench_nodesr, bench_small_budget, bench_train_step, block_start
from oisr_basicsr.archs.bicubic_arch import Bicubic
from oisr_basicsr.archs.oisr_arch import OISR, PAPER_MODELS, build_paper_model
from oisr_basicsr.complexity import count_macs
from oisr_basicsr.inference.upsampler import Upsampler
from oisr_basicsr.memory import peak_memory
from oisr_basicsr.options import AccelerationOptions
from oisr_basicsr.tools.compare import evaluate_folder

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ('pytest', 'amp', 'throughput', 'nodesr-memory', 'table1')
# Relative error of one training step under autocast against fp32 (same weights, same batch): the loss, and the
# L2 norm of the whole gradient's difference over its norm. bf16 keeps 8 mantissa bits, fp16 11.
AMP_BOUNDS = {'bf16': {'loss': 2e-2, 'grad': 1e-1}, 'fp16': {'loss': 5e-3, 'grad': 2e-2}}
AMP_STEPS = 20
FP16_LOSS_SCALE = 2.0**16  # GradScaler's initial scale
AMP_MODELS = ('LF-s', 'RK2-s')
THROUGHPUT_MODELS = ('EDSR-baseline', 'LF-s', 'RK2-s', 'EDSR', 'RK3')
CONFIGS = {
    'fp32': AccelerationOptions(),
    'bf16': AccelerationOptions(precision='bf16'),
    'bf16 + channels_last': AccelerationOptions(precision='bf16', channels_last=True),
    'bf16 + channels_last + compile': AccelerationOptions(precision='bf16', channels_last=True, compile=True),
}
# Dense (no sparsity) bf16 tensor-core peak in FLOP/s by GPU name, from the vendors' data sheets (SXM parts).
PEAK_BF16 = {'H200': 989.4e12, 'H100': 989.4e12, 'A100': 312e12, 'L40S': 362.05e12, 'L4': 121e12}
NODESR_CASES = (('VDSR', 'backprop'), ('VDSR', 'checkpoint'), ('VDSR', 'adjoint'), ('RDN', 'checkpoint'))
GIB = 2**30


@dataclass
class Row:
    """One line of the acceptance table; ``ok`` is None for a measurement without a pass / fail bound."""

    section: str
    item: str
    measured: str
    expected: str = ''
    ok: bool | None = None


@dataclass(frozen=True)
class Sizes:
    """Everything a dry run shrinks."""

    batch: int = 16
    patch: int = 48
    runs: int = 10
    warmup: int = 3
    nodesr_batch: int | None = None  # None: the option files' batch and patch
    nodesr_patch: int | None = None
    table1_batch: int = 16
    table1_patch: int = 48
    tiny_networks: bool = False
    throughput_models: tuple[str, ...] = THROUGHPUT_MODELS
    nodesr_cases: tuple[tuple[str, str], ...] = NODESR_CASES


# Every section and code path, with the fewest models that reach them all.
DRY_SIZES = Sizes(batch=2, patch=12, runs=1, warmup=1, nodesr_batch=1, nodesr_patch=16, table1_batch=2,
                  table1_patch=12, tiny_networks=True, throughput_models=('EDSR-baseline', 'LF-s'),
                  nodesr_cases=(('VDSR', 'backprop'), ('VDSR', 'adjoint')))


def build_model(name: str, scale: int, tiny: bool = False) -> nn.Module:
    """A paper OISR model or BasicSR's EDSR-baseline / EDSR, seeded; ``tiny`` keeps the structure with 8 features."""
    torch.manual_seed(0)
    if name.startswith('EDSR'):
        config = bench_train_step.EDSR_CONFIGS[name]
        if tiny:
            config = {**config, 'num_feat': 8, 'num_block': 2}
        return EDSR(3, 3, upscale=scale, **config)
    if tiny:
        return OISR(upscale=scale, **{**PAPER_MODELS[name], 'num_feat': 8, 'num_block': 2})
    return build_paper_model(name, scale)


def synchronise(device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter()


# --- amp ---------------------------------------------------------------------------------------------------------

def amp_deviation(make_net: Callable[[], nn.Module], precision: str, device: torch.device, batch: int, patch: int,
                  steps: int = AMP_STEPS) -> dict[str, float | bool]:
    """Loss and gradient relative error of one autocast step against fp32; whether ``steps`` steps stay finite."""
    generator = torch.Generator().manual_seed(1)
    lq = torch.rand(batch, 3, patch, patch, generator=generator).to(device)
    gt = torch.rand(batch, 3, 2 * patch, 2 * patch, generator=generator).to(device)
    results = {}
    for name in ('fp32', precision):
        net = make_net().to(device)
        options = AccelerationOptions(precision=name)
        with options.autocast(device.type):
            output = net(lq)
        loss = F.l1_loss(output.float(), gt)
        # fp16 gradients of an L1 loss underflow unless the loss is scaled, as the training's GradScaler does.
        loss_scale = FP16_LOSS_SCALE if name == 'fp16' else 1.0
        (loss * loss_scale).backward()
        results[name] = (loss.detach(), torch.cat([p.grad.flatten() for p in net.parameters()]) / loss_scale)
    (loss32, grad32), (loss_amp, grad_amp) = results['fp32'], results[precision]
    net = make_net().to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')
    options = AccelerationOptions(precision=precision)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        with options.autocast(device.type):
            output = net(lq)
        scaler.scale(F.l1_loss(output.float(), gt)).backward()
        scaler.step(optimiser)
        scaler.update()
    finite = all(torch.isfinite(p).all().item() for p in net.parameters()) and bool(torch.isfinite(output).all())
    return {'loss': ((loss_amp - loss32).abs() / loss32).item(),
            'grad': ((grad_amp - grad32).norm() / grad32.norm()).item(), 'finite': finite}


def amp_section(device: torch.device, sizes: Sizes) -> list[Row]:
    rows = []
    for model in AMP_MODELS:
        for precision, bounds in AMP_BOUNDS.items():
            result = amp_deviation(lambda model=model: build_model(model, 2, sizes.tiny_networks), precision, device,
                                   min(sizes.batch, 4), sizes.patch)
            rows.append(Row('amp', f'{model} {precision}: loss vs fp32', f'{result["loss"]:.2e}',
                            f'< {bounds["loss"]:g}', result['loss'] < bounds['loss']))
            rows.append(Row('amp', f'{model} {precision}: gradient vs fp32', f'{result["grad"]:.2e}',
                            f'< {bounds["grad"]:g}', result['grad'] < bounds['grad']))
            rows.append(Row('amp', f'{model} {precision}: {AMP_STEPS} steps', 'finite' if result['finite'] else
                            'not finite', 'finite', result['finite']))
    return rows


# --- throughput --------------------------------------------------------------------------------------------------

def peak_bf16_flops(device: torch.device, override_tflops: float | None) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s: ``--peak-tflops``, else looked up by name; None when unknown."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16.items() if re.search(rf'\b{key}\b', name)), None)


def images_per_second(name: str, config: AccelerationOptions, device: torch.device, sizes: Sizes) -> float:
    """Training images per second of one model and configuration (``bench_train_step.TrainStep``)."""
    eager = AccelerationOptions(precision=config.precision, channels_last=config.channels_last)
    net = build_model(name, 2, sizes.tiny_networks).to(device)
    # On the CPU a dry run traces the graph with dynamo but skips inductor's minute-long C++ build.
    step = bench_train_step.TrainStep(net, 2, sizes.batch, sizes.patch, device,
                                      config if device.type == 'cuda' else eager)
    if config.compile and device.type != 'cuda':
        step.net.compile(backend='eager')
    for _ in range(sizes.warmup):
        step()
    start = synchronise(device)
    for _ in range(sizes.runs):
        step()
    return sizes.batch * sizes.runs / (synchronise(device) - start)


def throughput_section(device: torch.device, sizes: Sizes, peak: float | None) -> list[Row]:
    rows = []
    for name in sizes.throughput_models:
        with torch.device('meta'):
            macs = count_macs(build_model(name, 2, sizes.tiny_networks), (1, 3, sizes.patch, sizes.patch))
        for label, config in CONFIGS.items():
            rate = images_per_second(name, config, device, sizes)
            fraction = f', {6 * macs * rate / peak:.1%} of peak bf16' if peak and config.precision == 'bf16' else ''
            rows.append(Row('throughput', f'{name}, {label}', f'{rate:.1f} images/s{fraction}',
                            f'batch {sizes.batch}, {sizes.patch}x{sizes.patch} LR, x2, {macs / 1e9:.3g} GMACs/image'))
    return rows


# --- nodesr-memory ------------------------------------------------------------------------------------------------

def nodesr_section(device: torch.device, sizes: Sizes) -> list[Row]:
    rows = []
    for backbone, mode in sizes.nodesr_cases:
        setup = bench_nodesr.paper_setup(backbone, sizes.nodesr_batch, sizes.nodesr_patch)
        traced = bench_nodesr.step_peak(setup, mode, 1, fake=True)
        free = torch.cuda.mem_get_info(device)[0] if device.type == 'cuda' else math.inf
        item = f'NODE-{backbone} {mode}, RK4 1 step'
        if traced > 0.8 * free:
            rows.append(Row('nodesr-memory', item, f'not run: traced {traced / GIB:.2f} GiB > 80% of free '
                            f'{free / GIB:.1f} GiB', f'traced {traced / GIB:.2f} GiB'))
            continue
        with torch.device(device):
            net, i0, t0, gt = setup()
        forward = bench_nodesr.make_step(net, i0, t0, gt, mode, 1)
        real = peak_memory(lambda forward=forward: forward().backward(), device)
        ratio = real / traced
        # The CUDA allocator rounds blocks up and cuDNN takes workspaces, so the real peak may exceed the trace.
        rows.append(Row('nodesr-memory', item, f'{real / GIB:.3f} GiB real ({ratio:.2f} x traced)',
                        f'traced {traced / GIB:.3f} GiB; ratio 0.9 to 1.25', 0.9 <= ratio <= 1.25))
        del net, i0, t0, gt, forward
    return rows


# --- table1 -------------------------------------------------------------------------------------------------------

def train_briefly(net: nn.Module, lq: torch.Tensor, gt: torch.Tensor, iters: int, batch: int,
                  device: torch.device) -> None:
    """Adam (lr 5e-4 cosine-annealed to 1e-6), L1, random batches from the patch pool with flips; fp32."""
    net.to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iters, eta_min=1e-6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(iters):
        index = torch.randint(len(lq), (batch, ), generator=generator)
        lq_batch, gt_batch = lq[index].to(device), gt[index].to(device)
        if torch.rand(1, generator=generator).item() < 0.5:
            lq_batch, gt_batch = lq_batch.flip(-1), gt_batch.flip(-1)
        optimiser.zero_grad(set_to_none=True)
        F.l1_loss(net(lq_batch), gt_batch).backward()
        optimiser.step()
        scheduler.step()


def table1_section(device: torch.device, sizes: Sizes, args: argparse.Namespace) -> list[Row]:
    set5 = args.data_root / 'benchmark' / 'Set5' / 'HR'
    pool = min(4096, max(64, args.table1_iters * sizes.table1_batch // 4))
    lq, gt = block_start.load_patches(args.data_root / 'train' / 'T91', pool, sizes.table1_patch, 0)
    bicubic = evaluate_folder(Upsampler(Bicubic(upscale=2), 2, device), set5, progress=False)[0]
    rows = [Row('table1', 'Bicubic, Set5 x2', f'{bicubic:.2f} dB', 'published 33.66 dB')]
    for model, config in bench_small_budget.MODELS.items():
        torch.manual_seed(0)
        options = {**config, 'num_feat': 8, 'num_block': 2} if sizes.tiny_networks else config
        net = OISR(upscale=2, num_feat=options.pop('num_feat', 64), **options)
        start = time.perf_counter()
        train_briefly(net, lq, gt, args.table1_iters, sizes.table1_batch, device)
        minutes = (synchronise(device) - start) / 60
        psnr = evaluate_folder(Upsampler(net, 2, device), set5, progress=False)[0]
        rows.append(Row('table1', f'{model}, Set5 x2 after {args.table1_iters} iterations ({minutes:.1f} min)',
                        f'{psnr:.2f} dB ({psnr - bicubic:+.2f} vs bicubic)',
                        f'batch {sizes.table1_batch}, {sizes.table1_patch}x{sizes.table1_patch} LR patches of T91'))
    return rows


# --- pytest -------------------------------------------------------------------------------------------------------

def pytest_section(dry_run: bool) -> list[Row]:
    # The dry run collects the CUDA tests of their own file only (they skip on the CPU): the full collection would
    # import every test module.
    targets = ['tests/test_cuda.py'] if dry_run else ['tests']
    command = [sys.executable, '-m', 'pytest', '-m', 'cuda', '-q', '-p', 'no:cacheprovider', *targets]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=540,
                            env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    counts = {word: int(number) for number, word in re.findall(r'(\d+) (passed|failed|skipped|error)', result.stdout)}
    measured = ', '.join(f'{n} {word}' for word, n in counts.items()) or result.stdout.strip()[-200:]
    ok = result.returncode == 0 and not counts.get('failed') and (dry_run or counts.get('passed', 0) > 0)
    return [Row('pytest', 'pytest -m cuda ' + ' '.join(targets), measured,
                'all skipped on the CPU' if dry_run else 'all passed', ok)]


def format_table(rows: list[Row]) -> str:
    lines = ['| Section | Item | Measured | Expected / setting | OK |', '|---|---|---|---|---|']
    for row in rows:
        ok = '' if row.ok is None else ('yes' if row.ok else '**NO**')
        lines.append(f'| {row.section} | {row.item} | {row.measured} | {row.expected} | {ok} |')
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dry-run', action='store_true', help='every section on the CPU at tiny sizes')
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument('--device', default='cuda', help='device of a real run (default: cuda)')
    parser.add_argument('--data-root', type=Path, default=REPO_ROOT.parent / 'shared' / 'data',
                        help='folder holding benchmark/Set5/HR and train/T91 (default: ../shared/data)')
    parser.add_argument('--table1-iters', type=int, default=None,
                        help='training iterations per Table 1 model (default: 1500; dry run 2)')
    parser.add_argument('--peak-tflops', type=float, help='dense bf16 peak of the GPU in TFLOP/s, if not known')
    args = parser.parse_args(argv)
    if args.table1_iters is None:
        args.table1_iters = 2 if args.dry_run else 1500
    if args.table1_iters < 1:
        parser.error('--table1-iters must be positive')
    if args.dry_run:
        args.device = 'cpu'
    elif torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error('no CUDA device: run on a GPU machine, or pass --dry-run for the CPU rehearsal')
    if 'table1' in args.sections and not (args.data_root / 'benchmark' / 'Set5' / 'HR').is_dir():
        parser.error(f'--data-root {args.data_root} holds no benchmark/Set5/HR folder')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    sizes = DRY_SIZES if args.dry_run else Sizes()
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as BasicSR's training runs
        where = torch.cuda.get_device_name(device)
    else:
        where = f'CPU, {torch.get_num_threads()} thread(s)'
    sections = {
        'pytest': lambda: pytest_section(args.dry_run),
        'amp': lambda: amp_section(device, sizes),
        'throughput': lambda: throughput_section(device, sizes, peak_bf16_flops(device, args.peak_tflops)),
        'nodesr-memory': lambda: nodesr_section(device, sizes),
        'table1': lambda: table1_section(device, sizes, args),
    }
    rows, timings = [], []
    for name in args.sections:
        start = time.perf_counter()
        rows += sections[name]()
        timings.append(f'{name} {time.perf_counter() - start:.0f} s')
        print(f'{name}: done in {time.perf_counter() - start:.0f} s', file=sys.stderr, flush=True)
    print(f'GPU acceptance{" (dry run: tiny sizes, figures meaningless)" if args.dry_run else ""}: {where}, '
          f'torch {torch.__version__}; ' + ', '.join(timings) + '\n')
    print(format_table(rows))
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
