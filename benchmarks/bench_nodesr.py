"""NODE-SR on the CPU: cost of a training step per gradient mode, PSNR against NFE per solver, and the peak
memory of a training step at the paper's sizes.

    python -m benchmarks.bench_nodesr [--threads 1] [--train-iters 300]
    python -m benchmarks.bench_nodesr --paper-memory [--threads 1] [--rss-batch 4] [--rss-modes checkpoint]

Part 1, training step (forward + backward + nothing else) of a small NODE-VDSR
(32 channels, 8 layers, batch 4 of 48x48, t0 = 3) with RK4 and 1, 2, 4, 8 steps,
for each gradient mode:

* time: median of 3 steps, all in this process, as a ratio to backprop with 1 step;
* saved: bytes of the tensors autograd keeps for the backward pass at the end of
  the forward, counted with ``torch.autograd.graph.saved_tensors_hooks`` (unique
  storages, parameters excluded). It is the part of the memory that the modes
  trade; checkpoint's per-evaluation inputs are held outside autograd and are
  not in it;
* peak: the whole process's extra peak resident memory during one step, in a
  fresh process per configuration: the kernel's high-water mark (``VmHWM``) is
  reset through ``/proc/self/clear_refs`` once the model and data exist and one
  no-grad forward has run, and read after the step (Linux only; ``ru_maxrss``
  cannot be reset and is dominated by importing torch). It includes the
  transients: checkpoint's recomputation of one evaluation, the adjoint's
  backward solve. glibc's mmap threshold is fixed (``MALLOC_MMAP_THRESHOLD_``)
  so that freed blocks leave the RSS.

Part 2, PSNR against the number of function evaluations (NFE) at inference for
euler, midpoint, rk4 and dopri5: a small NODE-VDSR (16 channels, 6 layers) is
trained for a few hundred iterations on T91 (scales 1.1 ... 4.0, RK4 with 2
steps), then Set5 at x3 (Meta-SR protocol, PSNR on Y, 3 pixels shaved) is
super-resolved with each solver. A trained model is needed: the zero-dynamics
model is bicubic for every solver.

``--paper-memory`` (instead of parts 1 and 2): peak tensor memory of one training
step (I(t0) -> RK4 solve -> L1 loss -> backward) of the networks and batches of
``options/train_NODESR_{VDSR,RDN}.yml`` (NODE-VDSR, batch 16 of 200x200; NODE-RDN,
batch 8 of 130x130), for each gradient mode and 1, 2, 4 RK4 steps. Such a step
needs up to hundreds of GiB, so it runs on fake tensors
(``torch._subclasses.fake_tensor.FakeTensorMode``: shapes only, no memory, no
compute) and :class:`oisr_basicsr.memory.TensorMemoryTracker` counts the
bytes the tensors would hold; network and inputs are built inside the fake
mode. The solver reads a few small tensors' values (the per-sample t0, the time
grid), which plain fake tensors do not have; :func:`fake_tensor_mode` keeps real
values for tensors of at most ``SMALL_CONSTANT_NUMEL`` elements. Also printed:
one evaluation of f (what backprop keeps per evaluation, and the forward's
peak), parameters and Adam state, and two checks that the trace is the real
peak: fake against real tensors (same tracker) for the paper networks on small
patches, and the trace against part 1's extra peak RSS of a real NODE-VDSR step
at ``--rss-batch`` (a fresh process per mode, RK4 with 1 step). docs/benchmarks.md
has ``--paper-memory --threads 2 --rss-modes checkpoint backprop`` (about 8
minutes on 2 cores) and the full batch, ``--rss-batch 16 --rss-modes checkpoint``.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch._subclasses.fake_tensor as fake_tensor
import yaml
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
# BasicSR 1.4.2 only imports after the fixes above, so this block must stay below them.
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.data.continuous_scale_dataset import ContinuousScalePairedDataset, benchmark_pair
from oisr_basicsr.data.resize import upscale_lr
from oisr_basicsr.memory import TensorMemoryTracker, peak_memory
from oisr_basicsr.models.node_solver import integrate
from oisr_basicsr.options import GRADIENT_MODES, ODEOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'
OPTIONS = REPO_ROOT / 'options'
# A fresh process of this benchmark, for the peak resident memory of one step; importable from the repository root.
CHILD = [sys.executable, '-m', 'benchmarks.bench_nodesr']
STEPS = (1, 2, 4, 8)
EVAL_SCALE = 3.0
# A fixed mmap threshold: glibc otherwise raises it after large frees, serves later large blocks from the heap
# and keeps them resident after they are freed, so the peak RSS would count freed memory.
MALLOC_ENV = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536'}
SOLVER_SWEEP = [('euler', dict(num_steps=n)) for n in (1, 2, 4, 8)] + \
               [('midpoint', dict(num_steps=n)) for n in (1, 2, 4)] + \
               [('rk4', dict(num_steps=n)) for n in (1, 2, 4)] + \
               [('dopri5', dict(rtol=rtol, atol=rtol / 10)) for rtol in (1e-1, 1e-2, 1e-3)]
# --paper-memory: the backbones of the paper-recipe option files, RK4 step counts, the start time of every sample
# (any t0 > 1 takes the same memory with a fixed step count), and NODESR.md's published fp32 figures (GiB).
PAPER_BACKBONES = ('VDSR', 'RDN')
PAPER_STEPS = (1, 2, 4)
PAPER_T0 = 3.0
PUBLISHED_GIB = {'VDSR': 'about 4.5 per evaluation, 13 per RK4 step', 'RDN': 'about 39 per evaluation'}
# The fake-against-real check: the paper networks on batches small enough to run for real (batch, patch, steps).
SMALL_CHECK = {'VDSR': (2, 48, (1, 2)), 'RDN': (1, 16, (1, ))}
# Tensors of at most this many elements keep real values under fake_tensor_mode: the per-sample t0 (the batch
# size), the time grid (steps + 1), scalars. Image-sized tensors have far more elements and stay fake.
SMALL_CONSTANT_NUMEL = 1024
# Factory functions (no tensor input) whose small results fake_tensor_mode computes for real.
_CONSTANT_FACTORIES = {torch.ops.aten.full.default, torch.ops.aten.linspace.default, torch.ops.aten.arange.default,
                       torch.ops.aten.arange.start, torch.ops.aten.arange.start_step, torch.ops.aten.zeros.default,
                       torch.ops.aten.ones.default, torch.ops.aten.scalar_tensor.default}
GIB = 2**30


def step_setup() -> tuple[NODEVDSR, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The part-1 network (last conv random, so that f is not zero) and a batch."""
    torch.manual_seed(0)
    net = NODEVDSR(num_feat=32, num_layer=8)
    torch.nn.init.normal_(net.conv_last.weight, std=0.01)
    return net, torch.rand(4, 3, 48, 48), torch.full((4, ), 3.0), torch.rand(4, 3, 48, 48)


def make_step(net: NODEVDSR, i0: torch.Tensor, t0: torch.Tensor, gt: torch.Tensor, mode: str,
              num_steps: int) -> Callable[[], torch.Tensor]:
    options = ODEOptions(solver='rk4', num_steps=num_steps, gradient=mode)

    def forward() -> torch.Tensor:
        return (integrate(net, i0, t0, options).final - gt).abs().mean()

    return forward


def saved_bytes(net: NODEVDSR, forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of the unique non-parameter storages autograd saves during ``forward``."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = forward()
    total = sum(storages.values())
    loss.backward()
    return total


def _memory_kib(field: str) -> int:
    return int(re.search(rf'{field}:\s+(\d+) kB', Path('/proc/self/status').read_text()).group(1))


def peak_rss_delta(mode: str, num_steps: int, setup: Callable = step_setup) -> int:
    """Run in a fresh process: extra peak resident memory (bytes) of one training step (Linux only)."""
    net, i0, t0, gt = setup()
    forward = make_step(net, i0, t0, gt, mode, num_steps)
    with torch.no_grad():
        forward()
    # The peak so far (VmHWM) comes from importing torch; writing 5 to clear_refs resets it to the current RSS.
    Path('/proc/self/clear_refs').write_text('5')
    before = _memory_kib('VmRSS')
    forward().backward()
    return (_memory_kib('VmHWM') - before) * 1024


class _SmallFactoriesAreConstants(TorchDispatchMode):
    """Under a FakeTensorMode: small results of deterministic factories (full, linspace, ...) keep real values."""

    def __init__(self, mode: fake_tensor.FakeTensorMode):
        super().__init__()
        self.mode = mode

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONSTANT_FACTORIES:
            with torch._C._DisableTorchDispatch():
                real = func(*args, **kwargs)
            if real.numel() <= SMALL_CONSTANT_NUMEL:
                return self.mode.fake_tensor_converter.from_real_tensor(self.mode, real, make_constant=True)
        return func(*args, **kwargs)


@contextlib.contextmanager
def fake_tensor_mode() -> Iterator[fake_tensor.FakeTensorMode]:
    """A FakeTensorMode in which tensors of at most ``SMALL_CONSTANT_NUMEL`` elements keep real values.

    Plain fake tensors have no values, so reading one (``bool``, ``tolist``, ``item``) raises
    ``DataDependentOutputException``; torch keeps a real copy only of one-element tensors made by ``torch.tensor``.
    :func:`integrate` reads t0 (the check that it is at least 1, the step count of every sample) and
    torchdiffeq's fixed-grid solver compares the times of its grid (``t1 >= t[j]``), in every gradient mode. Here
    the small factory results keep their values and torch's limit on constant propagation
    (``fake_tensor.CONSTANT_NUMEL_LIMIT``, a private module constant of torch 2.x) is raised for the duration, so
    that operations on small constants give constants; image-sized tensors stay fake. A constant that is viewed
    by a larger fake tensor loses its value (``append_time_plane`` does this to the t it is given): after passing
    a t0 to the network directly, give :func:`integrate` a fresh one.
    """
    limit = fake_tensor.CONSTANT_NUMEL_LIMIT
    fake_tensor.CONSTANT_NUMEL_LIMIT = SMALL_CONSTANT_NUMEL
    try:
        with fake_tensor.FakeTensorMode() as mode, _SmallFactoriesAreConstants(mode):
            yield mode
    finally:
        fake_tensor.CONSTANT_NUMEL_LIMIT = limit


Setup = Callable[[], tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]]


def paper_setup(backbone: str, batch: int | None = None, gt_size: int | None = None) -> Setup:
    """Network and batch of ``options/train_NODESR_{backbone}.yml`` (its batch and patch unless given)."""
    opt = yaml.safe_load((OPTIONS / f'train_NODESR_{backbone}.yml').read_text())
    batch = batch or opt['datasets']['train']['batch_size_per_gpu']
    size = gt_size or opt['datasets']['train']['gt_size']

    def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        net = build_network(dict(opt['network_g']))
        return net, torch.rand(batch, 3, size, size), torch.full((batch, ), PAPER_T0), torch.rand(batch, 3, size, size)

    return setup


def step_peak(setup: Setup, mode: str, num_steps: int, fake: bool = True) -> int:
    """Peak tensor bytes of one training step (RK4 solve, L1 loss, backward, fresh gradients) of ``setup()``.

    With ``fake`` the network and the batch are built and the step runs on fake tensors.
    """
    with fake_tensor_mode() if fake else contextlib.nullcontext():
        net, i0, t0, gt = setup()
        forward = make_step(net, i0, t0, gt, mode, num_steps)
        return peak_memory(lambda: forward().backward())


def parameter_bytes(setup: Setup) -> int:
    with fake_tensor_mode():
        return sum(p.numel() * p.element_size() for p in setup()[0].parameters())


def evaluation_memory(setup: Setup, inplace_relu: bool = True) -> tuple[int, int, int]:
    """One evaluation of f with autograd on, on fake tensors: (bytes alive after its forward, the forward's peak,
    the peak of forward + L1 loss + backward).

    The first is what backprop keeps per evaluation (activations saved for the backward pass, and the output).
    ``inplace_relu=False`` turns the networks' in-place ReLUs into out-of-place ones.
    """
    with fake_tensor_mode():
        net, i0, t0, gt = setup()
        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = inplace_relu
        with TensorMemoryTracker() as tracker:
            out = net(i0, t0)
            kept = tracker.live_bytes
            del out
        both = peak_memory(lambda: (net(i0, t0) - gt).abs().mean().backward())
        return kept, tracker.peak_bytes, both


def _rss_child(mode: str, num_steps: int, threads: int, backbone: str, batch: int) -> int:
    child = subprocess.run([*CHILD, '--threads', str(threads), '--peak-rss', mode, str(num_steps),
                            '--paper-setup', backbone, str(batch)], capture_output=True, text=True, check=True,
                           env=MALLOC_ENV, cwd=REPO_ROOT)
    return json.loads(child.stdout)


def paper_memory_tables(threads: int, rss_batch: int, rss_modes: list[str]) -> None:
    setups = {backbone: paper_setup(backbone) for backbone in PAPER_BACKBONES}
    evaluation_table(setups)
    training_step_peaks_table(setups)
    fake_against_real_table()
    rss_table(threads, rss_batch, rss_modes)


def evaluation_table(setups: dict[str, Setup]) -> None:
    print('Parameters, and one evaluation of f with autograd on (fp32, GiB; fake tensors).\n')
    print('| network | batch | parameters | parameters + Adam state | ReLU | one evaluation: kept for backward '
          '| forward peak | forward + backward peak | NODESR.md |')
    print('|---|---|---|---|---|---|---|---|---|')
    for backbone, setup in setups.items():
        opt = yaml.safe_load((OPTIONS / f'train_NODESR_{backbone}.yml').read_text())['datasets']['train']
        params = parameter_bytes(setup)
        for inplace_relu in (True, False):
            kept, forward, both = evaluation_memory(setup, inplace_relu)
            print(f'| NODE-{backbone} | {opt["batch_size_per_gpu"]} x 3 x {opt["gt_size"]} x {opt["gt_size"]} '
                  f'| {params / 2**20:.1f} MiB | {3 * params / 2**20:.1f} MiB '
                  f'| {"in place" if inplace_relu else "out of place"} | {kept / GIB:.2f} | {forward / GIB:.2f} '
                  f'| {both / GIB:.2f} | {PUBLISHED_GIB[backbone]} |')


def training_step_peaks_table(setups: dict[str, Setup]) -> None:
    print('\nPeak tensor memory of one training step (GiB; fake tensors; gradients included, parameters and Adam '
          'state not).\n')
    print('| network | gradient | ' + ' | '.join(f'RK4 x{n} (NFE {4 * n})' for n in PAPER_STEPS) + ' |')
    print('|---|---|' + '---|' * len(PAPER_STEPS))
    for backbone, setup in setups.items():
        for mode in GRADIENT_MODES:
            peaks = [step_peak(setup, mode, num_steps) for num_steps in PAPER_STEPS]
            print(f'| NODE-{backbone} | {mode} | ' + ' | '.join(f'{peak / GIB:.2f}' for peak in peaks) + ' |')


def fake_against_real_table() -> None:
    print('\nFake against real tensors, same tracker: the paper networks on small patches (bytes).\n')
    print('| network | batch | gradient | RK4 steps | fake | real | difference |')
    print('|---|---|---|---|---|---|---|')
    for backbone, (batch, size, steps) in SMALL_CHECK.items():
        setup = paper_setup(backbone, batch, size)
        for mode in GRADIENT_MODES:
            for num_steps in steps:
                fake = step_peak(setup, mode, num_steps)
                real = step_peak(setup, mode, num_steps, fake=False)
                print(f'| NODE-{backbone} | {batch} x 3 x {size} x {size} | {mode} | {num_steps} | {fake} | {real} '
                      f'| {fake - real} |')


def rss_table(threads: int, rss_batch: int, rss_modes: list[str]) -> None:
    print(f'\nTrace against the extra peak RSS of a real step (NODE-VDSR, batch {rss_batch} x 3 x 200 x 200, RK4 x1, '
          f'{threads} thread(s), a fresh process each).\n')
    print('| gradient | traced peak | extra peak RSS | RSS / trace | time of the real run |')
    print('|---|---|---|---|---|')
    for mode in rss_modes:
        traced = step_peak(paper_setup('VDSR', rss_batch), mode, 1)
        start = time.perf_counter()
        rss = _rss_child(mode, 1, threads, 'VDSR', rss_batch)
        print(f'| {mode} | {traced / GIB:.3f} GiB | {rss / GIB:.3f} GiB | {rss / traced:.3f} '
              f'| {time.perf_counter() - start:.0f} s |')


def training_step_table(threads: int) -> None:
    net, i0, t0, gt = step_setup()
    rows = []
    for mode in GRADIENT_MODES:
        for num_steps in STEPS:
            forward = make_step(net, i0, t0, gt, mode, num_steps)
            saved = saved_bytes(net, forward)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                forward().backward()
                times.append(time.perf_counter() - start)
            child = subprocess.run([*CHILD, '--threads', str(threads), '--peak-rss', mode, str(num_steps)],
                                   capture_output=True, text=True, check=True, env=MALLOC_ENV, cwd=REPO_ROOT)
            rows.append((mode, num_steps, statistics.median(times), saved, json.loads(child.stdout)))
    base_time, base_saved, base_peak = rows[0][2], rows[0][3], rows[0][4]
    print('| gradient | RK4 steps | NFE | time / step | time ratio | saved for backward | ratio | peak extra RSS '
          '| ratio |')
    print('|---|---|---|---|---|---|---|---|---|')
    for mode, num_steps, seconds, saved, peak in rows:
        print(f'| {mode} | {num_steps} | {4 * num_steps} | {seconds:.3f} s | {seconds / base_time:.2f} '
              f'| {saved / 2**20:.1f} MiB | {saved / base_saved:.2f} '
              f'| {peak / 2**20:.0f} MiB | {peak / base_peak:.2f} |')


def train_small_model(iterations: int) -> NODEVDSR:
    torch.manual_seed(0)
    dataset = ContinuousScalePairedDataset({'phase': 'train', 'dataroot_gt': str(SHARED_DATA / 'train' / 'T91'),
                                            'gt_size': 48})
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True)
    net = NODEVDSR(num_feat=16, num_layer=6)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    options = ODEOptions(solver='rk4', num_steps=2)
    done = 0
    while done < iterations:
        for batch in loader:
            loss = (integrate(net, batch['lq'], batch['scale'], options).final - batch['gt']).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == iterations:
                break
    return net.eval()


def psnr_table(iterations: int) -> None:
    net = train_small_model(iterations)
    pairs = []
    for path in sorted((SHARED_DATA / 'benchmark' / 'Set5' / 'HR').glob('*.png')):
        lr, reference = benchmark_pair(cv2.imread(str(path)), EVAL_SCALE)
        lr = torch.from_numpy(cv2.cvtColor(lr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.).permute(2, 0, 1)
        pairs.append((upscale_lr(lr[None], EVAL_SCALE, reference.shape[:2]), reference))

    def evaluate(solve: Callable[[torch.Tensor], tuple[torch.Tensor, int]]) -> tuple[float, float, float]:
        psnrs, nfes, start = [], [], time.perf_counter()
        for i0, reference in pairs:
            with torch.no_grad():
                sr, nfe = solve(i0)
            sr = (sr[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.).round().astype(np.uint8)
            psnrs.append(calculate_psnr(cv2.cvtColor(sr, cv2.COLOR_RGB2BGR), reference, crop_border=3,
                                        test_y_channel=True))
            nfes.append(nfe)
        return float(np.mean(psnrs)), float(np.mean(nfes)), time.perf_counter() - start

    print(f'Set5 x{EVAL_SCALE:g}, PSNR on Y (3 px shaved); small NODE-VDSR trained {iterations} iterations with RK4 '
          '(2 steps).\n')
    print('| solver | setting | NFE per image | PSNR (dB) | time for Set5 |')
    print('|---|---|---|---|---|')
    psnr, _, seconds = evaluate(lambda i0: (i0, 0))
    print(f'| none (bicubic I(t0)) | - | 0 | {psnr:.2f} | {seconds:.1f} s |')
    for solver, setting in SOLVER_SWEEP:
        options = ODEOptions(solver=solver, **setting)

        def solve(i0: torch.Tensor, options: ODEOptions = options) -> tuple[torch.Tensor, int]:
            solution = integrate(net, i0, EVAL_SCALE, options)
            return solution.final, solution.nfe

        psnr, nfe, seconds = evaluate(solve)
        label = ', '.join(f'{key} {value:g}' for key, value in setting.items())
        print(f'| {solver} | {label} | {nfe:.1f} | {psnr:.2f} | {seconds:.1f} s |')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--train-iters', type=int, default=300, help='training iterations of the part-2 model')
    parser.add_argument('--paper-memory', action='store_true',
                        help='only the peak memory of a training step at the paper-recipe sizes')
    parser.add_argument('--rss-batch', type=int, default=4,
                        help='--paper-memory: batch of the real NODE-VDSR step measured by its peak RSS (default 4)')
    parser.add_argument('--rss-modes', nargs='*', default=['checkpoint'], choices=GRADIENT_MODES,
                        help='--paper-memory: gradient modes of that real step (default checkpoint; none skips it)')
    parser.add_argument('--peak-rss', nargs=2, metavar=('MODE', 'STEPS'), help=argparse.SUPPRESS)
    parser.add_argument('--paper-setup', nargs=2, metavar=('BACKBONE', 'BATCH'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.peak_rss:
        setup = paper_setup(args.paper_setup[0], int(args.paper_setup[1])) if args.paper_setup else step_setup
        print(json.dumps(peak_rss_delta(args.peak_rss[0], int(args.peak_rss[1]), setup)))
        return
    print(f'torch {torch.__version__}, {args.threads} thread(s)\n')
    if args.paper_memory:
        paper_memory_tables(args.threads, args.rss_batch, args.rss_modes)
        return
    training_step_table(args.threads)
    print()
    psnr_table(args.train_iters)


if __name__ == '__main__':
    main()
