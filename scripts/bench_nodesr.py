"""NODE-SR on the CPU: cost of a training step per gradient mode, and PSNR against NFE per solver.

    python scripts/bench_nodesr.py [--threads 1] [--train-iters 300]

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
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
# BasicSR 1.4.2 only imports after the fixes above, so this block must stay below them.
from basicsr.metrics import calculate_psnr

from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.data.continuous_scale_dataset import ContinuousScalePairedDataset, benchmark_pair
from oisr_basicsr.data.resize import upscale_lr
from oisr_basicsr.models.node_solver import GRADIENT_MODES, ODEOptions, integrate

SHARED_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'
STEPS = (1, 2, 4, 8)
EVAL_SCALE = 3.0
# A fixed mmap threshold: glibc otherwise raises it after large frees, serves later large blocks from the heap
# and keeps them resident after they are freed, so the peak RSS would count freed memory.
MALLOC_ENV = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536'}
SOLVER_SWEEP = [('euler', dict(num_steps=n)) for n in (1, 2, 4, 8)] + \
               [('midpoint', dict(num_steps=n)) for n in (1, 2, 4)] + \
               [('rk4', dict(num_steps=n)) for n in (1, 2, 4)] + \
               [('dopri5', dict(rtol=rtol, atol=rtol / 10)) for rtol in (1e-1, 1e-2, 1e-3)]


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


def peak_rss_delta(mode: str, num_steps: int) -> int:
    """Run in a fresh process: extra peak resident memory (bytes) of one training step (Linux only)."""
    net, i0, t0, gt = step_setup()
    forward = make_step(net, i0, t0, gt, mode, num_steps)
    with torch.no_grad():
        forward()
    # The peak so far (VmHWM) comes from importing torch; writing 5 to clear_refs resets it to the current RSS.
    Path('/proc/self/clear_refs').write_text('5')
    before = _memory_kib('VmRSS')
    forward().backward()
    return (_memory_kib('VmHWM') - before) * 1024


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
            child = subprocess.run([sys.executable, __file__, '--threads', str(threads), '--peak-rss', mode,
                                    str(num_steps)], capture_output=True, text=True, check=True, env=MALLOC_ENV)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--train-iters', type=int, default=300, help='training iterations of the part-2 model')
    parser.add_argument('--peak-rss', nargs=2, metavar=('MODE', 'STEPS'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_rss:
        print(json.dumps(peak_rss_delta(args.peak_rss[0], int(args.peak_rss[1]))))
        return
    print(f'torch {torch.__version__}, {args.threads} thread(s)\n')
    training_step_table(args.threads)
    print()
    psnr_table(args.train_iters)


if __name__ == '__main__':
    main()
