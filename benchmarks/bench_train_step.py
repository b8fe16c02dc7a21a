"""Training step of OISR against BasicSR's EDSR of the same convolution count: time and peak memory.

    python -m benchmarks.bench_train_step [--device cpu] [--threads 1] [--batch 1] [--scales 2 3 4] \\
        [--models LF-s RK2-s RK3] [--runs 5] [--warmup 1] [--profile] [--micro] \\
        [--precision fp32] [--channels-last] [--compile [MODE]] [--pytorch-prelu] [--relu-bound] \\
        [--keep-freed-memory]

A step is one iteration of BasicSR's ``SRModel``: ``zero_grad``, forward, L1 loss, backward,
Adam step (betas 0.9 / 0.999, eps 1e-8). Inputs are random tensors of the paper's training
patches: LR 48x48 at every scale (HR 96 / 144 / 192), ``--batch`` of them (the paper's batch is
16; the CPU default is 1, and the defaults take about 6 minutes on a shared 2-core CPU, most of
it in the 256-channel pair).

Pairs, each OISR model against BasicSR's own ``EDSR`` with the same number of body convolutions:

* OISR-LF-s and OISR-RK2-s (32 body convs, 64 channels) against EDSR-baseline (16 residual
  blocks, 64 channels, ``res_scale`` 1: 32 body convs);
* OISR-RK3 (66 body convs, 256 channels) against EDSR (32 blocks, 256 channels, ``res_scale``
  0.1: 64 body convs). RK3 has 3% more convolution MACs; the MAC ratio column shows it.

Per model and scale (every network built with the same seed, all in this process, same threads):

* time / step: median over ``--runs`` steps after ``--warmup`` steps. Each EDSR and the OISR
  models compared with it are timed together, their steps interleaved (order rotated and
  reversed from round to round) so that load changes on a shared machine affect them alike.
  Forward (with loss), backward and Adam are timed apart as well (medians of each, so they
  need not add up to the median total). On CUDA each phase is synchronised;
* time ratio: against the pair's EDSR, the median over the rounds of the two models' times in
  the same round (paired, so a slow round counts for both; target for OISR: at most 1.05);
* CPU time (CPU only): the process's CPU time during the step, all threads; another process
  taking the core away does not inflate it, so on a shared machine it is the steadier figure;
* page faults (CPU only): minor page faults of the process during the step (median): 4 KiB pages the
  kernel maps and zeroes on their first touch, new to the process or given back to the system by the
  allocator and taken again. ``--keep-freed-memory`` makes glibc keep freed memory for reuse
  (``benchmarks.benchmarking.keep_freed_cpu_memory``), as CUDA's caching allocator does;
* peak memory: ``oisr_basicsr.memory.peak_memory`` of one step on top of the model,
  the batch and Adam's state (CUDA: allocator peak; elsewhere the tensors' storage bytes);
* paper-size peak: the same count for one step at the paper's batch (``--trace-batch``, 16),
  traced on fake tensors (``FakeTensorMode``): no memory, no compute, so it is known on a CPU too.
  It is tensor memory alone: no allocator rounding, no cuDNN workspaces.

``--precision``, ``--channels-last`` and ``--compile`` switch on the fast paths of
``AcceleratedSRModel`` (the ``acceleration:`` block, same validation, same code) for every model of the
table, OISR and EDSR alike, so the ratios compare the two families under the same fast path. Compiling
happens in the warm-up steps. On the CPU the peak of a compiled model is the one of its eager network:
``torch.compile`` runs a function eagerly while a dispatch mode (the storage count) is active.

``--pytorch-prelu`` adds each OISR model once more, built with PyTorch's ``nn.PReLU`` instead of the
package's ``VectorizedPReLU`` (same weights), timed in the same rounds: the effect of the faster PReLU
backward on the whole step. ``--relu-bound`` adds each OISR model with a ReLU in place of every PReLU
(not the paper's network: same convolutions, blocks and scalars, no slopes): the step as it would cost if
every PReLU cost what EDSR's ReLU costs, so the ratio no PReLU implementation can go below.

``--profile`` adds, per model at the first scale, ``--runs`` interleaved forward + backward
passes under torch.profiler, with the self time (median) grouped into convolutions, PReLU / ReLU,
other element-wise operations and the rest. ``--micro`` adds the forward + backward time of
the element-wise operations that differ between the two families, on one 64-channel feature
map of the batch's size.
"""

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
# BasicSR 1.4.2 only imports after the fixes above, so this block must stay below them.
from basicsr.archs.edsr_arch import EDSR

from benchmarks.benchmarking import keep_freed_cpu_memory, prepare_benchmark_device
from oisr_basicsr.archs.ode_schemes import VectorizedPReLU
from oisr_basicsr.archs.oisr_arch import build_paper_model
from oisr_basicsr.complexity import count_macs, count_parameters
from oisr_basicsr.memory import peak_memory
from oisr_basicsr.models.accelerated_sr_model import accelerate_network
from oisr_basicsr.options import COMPILE_MODES, AccelerationOptions, parse_acceleration_options
from oisr_basicsr.precisions import PRECISIONS

PATCH = 48  # the paper's LR training patch, at every scale
PAPER_BATCH = 16
OISR_MODELS = ('LF-s', 'RK2-s', 'RK3')
# The BasicSR EDSR each OISR model is compared with (same number of body convolutions).
BASELINE_OF = {'LF-s': 'EDSR-baseline', 'RK2-s': 'EDSR-baseline', 'RK3': 'EDSR'}
# Variants of an OISR model, timed in the same rounds as the model: the suffix of their name and what replaces
# each of the model's VectorizedPReLUs.
PYTORCH_PRELU = ' + nn.PReLU'
RELU_BOUND = ' + ReLU'


def _pytorch_prelu(prelu: VectorizedPReLU) -> nn.Module:
    plain = nn.PReLU(prelu.num_parameters)
    plain.weight = prelu.weight
    return plain


VARIANTS: dict[str, Callable[[VectorizedPReLU], nn.Module]] = {
    PYTORCH_PRELU: _pytorch_prelu,  # the implementation before VectorizedPReLU, same weights
    RELU_BOUND: lambda prelu: nn.ReLU(),  # not in place: a PReLU's input is also used elsewhere in the block
}
EDSR_CONFIGS = {
    'EDSR-baseline': dict(num_feat=64, num_block=16, res_scale=1),
    'EDSR': dict(num_feat=256, num_block=32, res_scale=0.1),
}
PHASES = ('forward', 'backward', 'adam')
# Wall time of the step, the process's CPU time during it (all threads; not slowed down by other processes
# taking the CPU away), and the wall time of each phase.
TIMES = ('total', 'cpu', *PHASES)


def split_variant(name: str) -> tuple[str, str | None]:
    """``'LF-s + ReLU'`` -> ``('LF-s', ' + ReLU')``; a name without a :data:`VARIANTS` suffix -> ``(name, None)``."""
    for suffix in VARIANTS:
        if name.endswith(suffix):
            return name.removesuffix(suffix), suffix
    return name, None


def build(name: str, scale: int) -> nn.Module:
    """An OISR paper model, one of its :data:`VARIANTS` or a BasicSR EDSR baseline, seeded."""
    torch.manual_seed(0)
    if name in EDSR_CONFIGS:
        return EDSR(3, 3, upscale=scale, **EDSR_CONFIGS[name])
    model, suffix = split_variant(name)
    net = build_paper_model(model, scale)
    if suffix is not None:
        for path, module in list(net.named_modules()):
            if isinstance(module, VectorizedPReLU):
                net.set_submodule(path, VARIANTS[suffix](module))
    return net


def baseline_of(name: str) -> str:
    """The EDSR ``name`` is compared with (itself for a name without one)."""
    return BASELINE_OF.get(split_variant(name)[0], name)


def _minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class TrainStep:
    """One BasicSR training iteration of ``net`` (already on ``device``) on a random batch.

    With ``acceleration`` it is the iteration of ``AcceleratedSRModel``: autocast forward, fp32 loss, a
    gradient scaler under fp16, channels_last batches and weights, a compiled network.
    ``times`` collects the phases of the recorded calls.
    """

    def __init__(self, net: nn.Module, scale: int, batch: int, patch: int, device: torch.device,
                 acceleration: AccelerationOptions | None = None):
        self.acceleration = acceleration or AccelerationOptions()
        self.net = accelerate_network(net.train(), self.acceleration)
        self.device = device
        memory_format = torch.channels_last if self.acceleration.channels_last else torch.contiguous_format
        self.lq = torch.rand(batch, 3, patch, patch, device=device).contiguous(memory_format=memory_format)
        self.gt = torch.rand(batch, 3, patch * scale, patch * scale, device=device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
        self.grad_scaler = torch.amp.GradScaler(device.type, enabled=self.acceleration.precision == 'fp16')
        self.times: dict[str, list[float]] = {phase: [] for phase in TIMES}
        self.page_faults: list[int] = []

    def _sync(self) -> float:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def __call__(self, record: bool = False) -> None:
        faults_start = _minor_page_faults()
        start, cpu_start = self._sync(), time.process_time()
        self.optimizer.zero_grad(set_to_none=True)
        with self.acceleration.autocast(self.device.type):
            output = self.net(self.lq)
        loss = F.l1_loss(output.float(), self.gt)
        forward_end = self._sync() if record else 0.0
        self.grad_scaler.scale(loss).backward()
        backward_end = self._sync() if record else 0.0
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        if record:
            end, cpu_end = self._sync(), time.process_time()
            for phase, seconds in zip(TIMES, (end - start, cpu_end - cpu_start, forward_end - start,
                                              backward_end - forward_end, end - backward_end), strict=True):
                self.times[phase].append(seconds)
            self.page_faults.append(_minor_page_faults() - faults_start)

    def median(self, phase: str = 'total') -> float:
        return statistics.median(self.times[phase])


def traced_peak(make: Callable[[int], nn.Module], scale: int, batch: int, patch: int,
                acceleration: AccelerationOptions | None = None) -> int:
    """Peak tensor bytes of one training step (after one warm-up step), traced on fake tensors.

    ``acceleration``'s precision applies. The network runs eager and contiguous: fake parameters cannot be
    converted to channels_last in place, and the format changes strides, not sizes.
    """
    eager = (acceleration or AccelerationOptions()).model_copy(update={'channels_last': False, 'compile': False})
    with FakeTensorMode():
        step = TrainStep(make(scale), scale, batch, patch, torch.device('cpu'), eager)
        step()  # creates Adam's state, as in the measured run
        return peak_memory(step)


@dataclass
class Row:
    scale: int
    model: str
    baseline: str
    params: int
    macs: int
    seconds: dict[str, float]  # median per phase
    samples: dict[str, list[float]]  # per round, in round order
    page_faults: float  # median per step
    peak: int
    traced: int


def model_names(models: list[str]) -> list[str]:
    """The baselines of ``models`` first, then the models, without repeats."""
    return list(dict.fromkeys([baseline_of(m) for m in models] + list(models)))


def builders_for(names: list[str], builders: dict[str, Callable[[int], nn.Module]] | None
                 ) -> dict[str, Callable[[int], nn.Module]]:
    builders = builders or {}
    return {name: builders.get(name, lambda scale, name=name: build(name, scale)) for name in names}


def round_order(names: list[str], round_index: int) -> list[str]:
    """The models' order in a round: rotated every other round and reversed in odd rounds.

    Over ``2 * len(names)`` rounds each model runs in each position equally often, and, for up to three
    models (a group here), right after each of the others equally often.
    """
    shift = (round_index // 2) % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if round_index % 2 else order


def interleave(steps: dict[str, TrainStep], runs: int, warmup: int) -> None:
    """Warm every model up, then time ``runs`` rounds of one step per model (:func:`round_order`)."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    for round_index in range(runs):
        for name in round_order(names, round_index):
            steps[name](record=True)


def measure_scale(models: list[str], scale: int, args: argparse.Namespace,
                  builders: dict[str, Callable[[int], nn.Module]] | None = None) -> list[Row]:
    """Rows for ``models`` and their baselines at one scale.

    Each baseline and the models compared with it are measured side by side, apart from the other
    groups (a 64-channel step right after a 256-channel one would start with cold caches).
    ``builders`` may map extra names to ``scale -> network`` (e.g. another implementation to compare);
    such a name is its own baseline unless it appears in :data:`BASELINE_OF`.
    """
    device = torch.device(args.device)
    names = model_names(models)
    make = builders_for(names, builders)
    rows = []
    for baseline in dict.fromkeys(baseline_of(name) for name in names):
        group = [name for name in names if baseline_of(name) == baseline]
        steps = {name: TrainStep(make[name](scale).to(device), scale, args.batch, args.patch, device,
                                 args.acceleration)
                 for name in group}
        interleave(steps, args.runs, args.warmup)
        for name in group:
            with torch.device('meta'):
                meta_net = make[name](scale)
            rows.append(Row(scale=scale, model=name, baseline=baseline,
                            params=count_parameters(steps[name].net)['params'],
                            macs=count_macs(meta_net, (1, 3, args.patch, args.patch)),
                            seconds={phase: steps[name].median(phase) for phase in TIMES},
                            samples={phase: list(steps[name].times[phase]) for phase in ('total', 'cpu')},
                            page_faults=statistics.median(steps[name].page_faults),
                            peak=peak_memory(steps[name], device),
                            traced=traced_peak(make[name], scale, args.trace_batch, args.patch,
                                               args.acceleration)))
        del steps
    return rows


def paired_ratio(row: Row, base: Row, phase: str) -> float:
    """Median over the rounds of the model's time over its baseline's time in the same round."""
    return statistics.median(t / b for t, b in zip(row.samples[phase], base.samples[phase], strict=True))


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    by_key = {(row.scale, row.model): row for row in rows}
    cpu = torch.device(args.device).type == 'cpu'
    print(f'Time of one training step, batch {args.batch} (median of {args.runs}; ratio: against the EDSR '
          f'of the row, median of the {args.runs} per-round ratios)\n')
    print('| scale | model | params | MAC ratio | forward | backward | Adam | time / step | time ratio |'
          + (' CPU time / step | CPU time ratio | page faults / step |' if cpu else ''))
    print('|---' * (9 + 3 * cpu) + '|')
    for row in rows:
        base = by_key[(row.scale, row.baseline)]
        ms = {phase: 1000 * value for phase, value in row.seconds.items()}
        label = row.model if row.baseline == row.model else f'{row.model} (vs {row.baseline})'
        line = (f'| x{row.scale} | {label} | {row.params:,} | {row.macs / base.macs:.3f} '
                f'| {ms["forward"]:.0f} ms | {ms["backward"]:.0f} ms | {ms["adam"]:.0f} ms | {ms["total"]:.0f} ms '
                f'| {paired_ratio(row, base, "total"):.3f} |')
        if cpu:
            line += f' {ms["cpu"]:.0f} ms | {paired_ratio(row, base, "cpu"):.3f} | {row.page_faults:,.0f} |'
        print(line)
    mib = 2**20
    where = 'CUDA allocator' if not cpu else 'tensor storages'
    print(f'\nPeak memory of one training step on top of the model, its batch and Adam\'s state ({where}, batch '
          f'{args.batch}); and traced on fake tensors at batch {args.trace_batch}\n')
    print(f'| scale | model | peak (batch {args.batch}) | ratio | traced peak (batch {args.trace_batch}) | ratio |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        base = by_key[(row.scale, row.baseline)]
        label = row.model if row.baseline == row.model else f'{row.model} (vs {row.baseline})'
        print(f'| x{row.scale} | {label} | {row.peak / mib:.0f} MiB | {row.peak / base.peak:.2f} '
              f'| {row.traced / mib:.0f} MiB | {row.traced / base.traced:.2f} |')


CATEGORIES = ('convolution', 'PReLU / ReLU', 'other element-wise', 'rest')
ELEMENTWISE = {'add', 'add_', 'mul', 'mul_', 'addcmul', 'addcmul_', 'sum', 'div', 'div_', 'sub', 'rsub', 'neg',
               'abs', 'sgn', 'sign', 'mean', 'l1_loss', 'copy_', 'fill_', 'zero_', 'where', 'clone'}


def category(op_name: str) -> str:
    name = op_name.removeprefix('aten::')
    lower = name.lower()  # autograd's node names too, e.g. 'evaluate_function: PreluKernelBackward0'
    if 'conv' in lower:
        return 'convolution'
    if 'relu' in lower or 'threshold' in lower or 'clamp_min' in lower:
        return 'PReLU / ReLU'
    if name in ELEMENTWISE:
        return 'other element-wise'
    return 'rest'


def profile_forward_backward(step: TrainStep) -> dict[str, float]:
    """Self time (seconds) of one forward + loss + backward, by :data:`CATEGORIES`."""
    from torch.profiler import ProfilerActivity, profile

    cuda = step.device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        step.optimizer.zero_grad(set_to_none=True)
        F.l1_loss(step.net(step.lq), step.gt).backward()
        if cuda:
            torch.cuda.synchronize(step.device)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.key_averages():
        if cuda:
            # Kernels are rows of their own and also the device time of the operator that launched them.
            if not event.key.startswith('aten::'):
                continue
            micros = getattr(event, 'self_device_time_total', None) or getattr(event, 'self_cuda_time_total', 0)
        else:
            micros = event.self_cpu_time_total
        totals[category(event.key)] += micros / 1e6
    return totals


def print_profile(models: list[str], scale: int, args: argparse.Namespace,
                  builders: dict[str, Callable[[int], nn.Module]] | None = None) -> None:
    """Per model, the median over ``--runs`` interleaved profiled steps of each category's self time."""
    device = torch.device(args.device)
    names = model_names(models)
    make = builders_for(names, builders)
    medians: dict[str, dict[str, float]] = {}
    for baseline in dict.fromkeys(baseline_of(name) for name in names):
        group = [name for name in names if baseline_of(name) == baseline]
        steps = {name: TrainStep(make[name](scale).to(device), scale, args.batch, args.patch, device,
                                 args.acceleration)
                 for name in group}
        for name in group:
            steps[name]()
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in group}
        for round_index in range(args.runs):
            for name in round_order(group, round_index):
                samples[name].append(profile_forward_backward(steps[name]))
        for name in group:
            medians[name] = {c: statistics.median(sample[c] for sample in samples[name]) for c in CATEGORIES}
        del steps
    print(f'\nx{scale}, batch {args.batch}: self time of forward + loss + backward by kind of operator '
          f'(torch.profiler, {"device" if device.type == "cuda" else "CPU"} time; median of {args.runs} '
          f'interleaved steps)\n')
    print('| model | ' + ' | '.join(CATEGORIES) + ' | sum |')
    print('|---' * (len(CATEGORIES) + 2) + '|')
    for name, values in medians.items():
        cells = ' | '.join(f'{1000 * values[c]:.0f} ms' for c in CATEGORIES)
        print(f'| {name} | {cells} | {1000 * sum(values.values()):.0f} ms |')


def micro_ops(shape: tuple[int, ...], device: torch.device) -> dict[str, Callable[[], None]]:
    """Forward + backward of single element-wise operations on one feature map (inputs require grad)."""
    channels = shape[1]
    a = torch.randn(shape, device=device, requires_grad=True)
    b = torch.randn(shape, device=device, requires_grad=True)
    grad = torch.randn(shape, device=device)
    slope = torch.full((channels, ), 0.25, device=device, requires_grad=True)
    scalar = torch.full((1, ), 0.5, device=device, requires_grad=True)
    prelu = VectorizedPReLU(channels, init=0.25).to(device)
    return {
        'ReLU (EDSR)': lambda: F.relu(a).backward(grad),
        'PReLU, per channel (PyTorch)': lambda: F.prelu(a, slope).backward(grad),
        'PReLU, per channel, vectorised backward (OISR G)': lambda: prelu(a).backward(grad),
        'a * 0.1, Python float (EDSR res_scale)': lambda: (a * 0.1).backward(grad),
        's * a, learnable [1] tensor (OISR scalars, unfused)': lambda: (scalar * a).backward(grad),
        'addcmul(b, s, a), learnable [1] tensor': lambda: torch.addcmul(b, scalar, a).backward(grad),
        'a + b': lambda: (a + b).backward(grad),
    }


def print_micro(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    shape = (args.batch, 64, args.patch, args.patch)
    ops = micro_ops(shape, device)
    times: dict[str, list[float]] = {name: [] for name in ops}
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for round_index in range(args.warmup + 15):
        for name, op in ops.items():
            sync()
            start = time.perf_counter()
            op()
            sync()
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - start)
    relu = statistics.median(times['ReLU (EDSR)'])
    print(f'\nForward + backward of one operation on a {"x".join(map(str, shape))} feature map '
          f'(median of 15, interleaved)\n')
    print('| operation | time | vs ReLU |')
    print('|---|---|---|')
    for name, values in times.items():
        median = statistics.median(values)
        print(f'| {name} | {1e3 * median:.2f} ms | {median / relu:.2f} |')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--batch', type=int, default=None,
                        help=f'patches per step (default 1 on the CPU, {PAPER_BATCH} on CUDA)')
    parser.add_argument('--patch', type=int, default=PATCH, help=f'LR patch size (default {PATCH})')
    parser.add_argument('--trace-batch', type=int, default=PAPER_BATCH,
                        help=f'batch of the fake-tensor peak (default {PAPER_BATCH})')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument('--models', nargs='+', default=list(OISR_MODELS), choices=OISR_MODELS,
                        help='OISR models; their EDSR baselines are added')
    parser.add_argument('--runs', type=int, default=5, help='timed steps per model (default 5)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 1, CUDA 3)')
    parser.add_argument('--profile', action='store_true', help='add the torch.profiler breakdown')
    parser.add_argument('--micro', action='store_true', help='add the element-wise micro-benchmark')
    parser.add_argument('--pytorch-prelu', action='store_true',
                        help=f'also time each OISR model with nn.PReLU ("<model>{PYTORCH_PRELU}")')
    parser.add_argument('--keep-freed-memory', action='store_true',
                        help="keep freed CPU memory in the process (glibc's malloc) instead of giving it back")
    parser.add_argument('--relu-bound', action='store_true',
                        help=f'also time each OISR model with ReLU in place of its PReLUs ("<model>{RELU_BOUND}")')
    parser.add_argument('--precision', default='fp32', choices=list(PRECISIONS),
                        help='autocast precision of every model (default fp32)')
    parser.add_argument('--channels-last', action='store_true', help='channels_last weights and batches')
    parser.add_argument('--compile', nargs='?', const=True, default=False, metavar='MODE',
                        help=f'torch.compile every model (mode: {", ".join(COMPILE_MODES)}; default mode without)')
    args = parser.parse_args(argv)
    try:
        args.acceleration = parse_acceleration_options({'precision': args.precision,
                                                        'channels_last': args.channels_last,
                                                        'compile': args.compile})
    except ValueError as error:
        parser.error(str(error))
    cuda = torch.device(args.device).type == 'cuda'
    if args.batch is None:
        args.batch = PAPER_BATCH if cuda else 1
    if args.warmup is None:
        args.warmup = 3 if cuda else 1
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    where = prepare_benchmark_device(args.device, args.threads)
    if args.keep_freed_memory and not keep_freed_cpu_memory():
        raise SystemExit('--keep-freed-memory needs glibc (its mallopt); this C library has none.')
    allocator = 'freed CPU memory kept' if args.keep_freed_memory else 'default CPU allocator'
    print(f'torch {torch.__version__}, {where}, {allocator}; LR patch {args.patch}, batch {args.batch}, '
          f'{args.runs} timed steps after {args.warmup} warm-up; {args.acceleration!r}\n')
    suffixes = [suffix for suffix, wanted in ((PYTORCH_PRELU, args.pytorch_prelu), (RELU_BOUND, args.relu_bound))
                if wanted]
    models = [variant for model in args.models for variant in (model, *(model + suffix for suffix in suffixes))]
    rows = []
    for scale in args.scales:
        rows += measure_scale(models, scale, args)
    print_table(rows, args)
    if args.profile:
        print_profile(models, args.scales[0], args)
    if args.micro:
        print_micro(args)
    return rows


if __name__ == '__main__':
    main()
