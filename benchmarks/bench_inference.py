"""Inference latency and peak memory of the paper's OISR models at a 1280x720 output, whole and tiled.

    python -m benchmarks.bench_inference [--device cpu] [--threads 1] [--models LF-s RK2-s LF RK2 RK3] \\
        [--scales 4] [--runs 1] [--warmup 0 (CUDA: 1)] [--tile 128] [--overlap 16] [--precision fp32] \\
        [--output 1280x720] [--trace-only]

The defaults (every model at x4, one run, one thread) take about 5 minutes on a shared 2-core
CPU; ``--scales 2 3 4`` takes about half an hour there (RK3 x2 alone, 9.7 TMACs: 4 minutes whole
and 7 tiled).

Inputs are random RGB images whose output is 1280x720: 640x360 at x2, 320x180 at x4 and 427x240
at x3 (its 1281x720 output is cropped to 1280x720, as in the paper's MAC counts, which use
the 427-pixel width). Each model (random weights: the cost does not depend on them) runs
through the package's inference path, ``oisr_basicsr.inference.upsampler.Upsampler`` (inference mode,
output returned on the CPU and clamped), twice per repetition, in alternating order:

* whole: the image in one forward pass;
* tiled: ``oisr_basicsr.inference.tiling.tiled_forward`` with ``--tile`` LR pixels per window and
  ``--overlap`` pixels of context per inner side (recomputed, so tiles cost extra MACs).

Before the timed runs each model does one forward pass on a 64x64 input (thread pool,
oneDNN / cuDNN set-up) and then ``--warmup`` full runs of each mode. Reported per model and scale:

* MACs: ``count_macs`` of the whole input (the papers' convention: conv weights x output
  pixels), and the MACs the tiles execute, as a ratio to it;
* latency: median of ``--runs`` (ms), GMAC/s (the whole image's MACs over the latency, so the
  tiled figure is the effective throughput), and the ratio tiled / whole of the same model;
* peak memory: ``peak_memory`` of a run on top of the model and the input (CUDA: allocator
  peak; CPU: the tensors' storage bytes), measured around the first timed run of each mode
  (the CPU tracker's bookkeeping costs microseconds per operator, far below these runs; it
  also counts the input once, as ``Upsampler`` passes it on as an alias of itself).
  With ``--trace-only`` nothing runs: both peaks are traced on fake tensors
  (``FakeTensorMode``), which needs neither the memory nor the compute, and no latency is given.
"""

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

import oisr_basicsr  # noqa: F401  (BasicSR needs the compatibility fixes before its first import)

# isort: split
from benchmarks.benchmarking import prepare_benchmark_device
from oisr_basicsr.archs.oisr_arch import PAPER_MODELS, build_paper_model
from oisr_basicsr.complexity import count_macs
from oisr_basicsr.inference.tiling import tile_spans, tiled_forward
from oisr_basicsr.inference.upsampler import Upsampler
from oisr_basicsr.memory import peak_memory

OUTPUT = (720, 1280)  # height, width
MODES = ('whole', 'tiled')


def input_size(output_hw: tuple[int, int], scale: int) -> tuple[int, int]:
    """The LR size whose output covers ``output_hw``: 360x640, 240x427 and 180x320 for 720x1280."""
    return tuple(math.ceil(size / scale) for size in output_hw)


@dataclass
class Row:
    model: str
    scale: int
    input_hw: tuple[int, int]
    macs: int
    tiled_macs: int
    seconds: dict[str, float | None]
    peak: dict[str, int]
    memory: str  # 'measured' or 'traced'


def tiled_macs(net: nn.Module, input_hw: tuple[int, int], tile: int, overlap: int) -> int:
    """MACs that ``tiled_forward`` executes: the sum over its windows (``net`` on the meta device)."""
    rows, cols = (tile_spans(length, tile, overlap) for length in input_hw)
    windows = Counter((y1 - y0, x1 - x0) for y0, y1, _, _ in rows for x0, x1, _, _ in cols)
    return sum(count * count_macs(net, (1, 3, h, w)) for (h, w), count in windows.items())


def traced_peaks(name: str, scale: int, args: argparse.Namespace) -> dict[str, int]:
    """Peak bytes of the whole and the tiled run, traced on fake tensors.

    The operators are those of :class:`~oisr_basicsr.inference.upsampler.Upsampler` on the CPU in fp32 (which cannot be
    built on fake tensors: it moves the network), so a real CPU run gives the same count.
    """
    height, width = args.output
    with FakeTensorMode():
        net = build_paper_model(name, scale).eval()
        lq = torch.rand(1, 3, *input_size(args.output, scale))
        with torch.inference_mode():
            return {
                'whole': peak_memory(lambda: net(lq.to('cpu')).clamp_(0, 1)[..., :height, :width]),
                'tiled': peak_memory(lambda: tiled_forward(net, lq, scale, args.tile, args.overlap).clamp_(0, 1)
                                     [..., :height, :width]),
            }


class Runner:
    """The two inference modes of one model, timed and measured."""

    def __init__(self, name: str, scale: int, args: argparse.Namespace):
        torch.manual_seed(0)
        self.device = torch.device(args.device)
        net = build_paper_model(name, scale)
        self.modes: dict[str, Upsampler] = {
            'whole': Upsampler(net, scale, self.device, args.precision),
            'tiled': Upsampler(net, scale, self.device, args.precision, tile=args.tile, tile_overlap=args.overlap),
        }
        self.lq = torch.rand(1, 3, *input_size(args.output, scale))
        self.output_hw = args.output
        self.times: dict[str, list[float]] = {mode: [] for mode in MODES}
        self.peak: dict[str, int] = {}
        # Thread pool, oneDNN primitives / cuDNN algorithms: set up on a small input.
        self.modes['whole'](torch.rand(1, 3, 64, 64))

    def _sync(self) -> float:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def run(self, mode: str, record: bool) -> None:
        def work() -> torch.Tensor:
            return self.modes[mode](self.lq)[..., :self.output_hw[0], :self.output_hw[1]]

        start = self._sync()
        if record and mode not in self.peak:
            self.peak[mode] = peak_memory(work, self.device)
        else:
            work()
        if record:
            self.times[mode].append(self._sync() - start)


def measure(name: str, scale: int, args: argparse.Namespace) -> Row:
    with torch.device('meta'):
        meta_net = build_paper_model(name, scale)
    input_hw = input_size(args.output, scale)
    macs = count_macs(meta_net, (1, 3, *input_hw))
    executed = tiled_macs(meta_net, input_hw, args.tile, args.overlap)
    if args.trace_only:
        return Row(name, scale, input_hw, macs, executed, dict.fromkeys(MODES), traced_peaks(name, scale, args),
                   'traced')
    runner = Runner(name, scale, args)
    for _ in range(args.warmup):
        for mode in MODES:
            runner.run(mode, record=False)
    for round_index in range(args.runs):
        for mode in (MODES if round_index % 2 == 0 else MODES[::-1]):
            runner.run(mode, record=True)
    seconds = {mode: statistics.median(runner.times[mode]) for mode in MODES}
    return Row(name, scale, input_hw, macs, executed, seconds, runner.peak, 'measured')


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    mib = 2**20
    tiled = f'tiled ({args.tile}/{args.overlap})'
    print(f'| model | scale | input | GMAC | whole | GMAC/s | {tiled} | GMAC/s | tiled / whole | tile MACs '
          f'| peak whole | peak tiled | ratio |')
    print('|---' * 13 + '|')
    for row in rows:
        whole_s, tiled_s = row.seconds['whole'], row.seconds['tiled']
        gmac = row.macs / 1e9
        if whole_s is None:
            timing = '| - | - | - | - | - '
        else:
            timing = (f'| {1000 * whole_s:,.0f} ms | {gmac / whole_s:.1f} | {1000 * tiled_s:,.0f} ms '
                      f'| {gmac / tiled_s:.1f} | {tiled_s / whole_s:.2f} ')
        marker = '' if row.memory == 'measured' else ' (traced)'
        print(f'| {row.model} | x{row.scale} | {row.input_hw[1]}x{row.input_hw[0]} | {gmac:,.1f} {timing}'
              f'| {row.tiled_macs / row.macs:.2f} | {row.peak["whole"] / mib:,.0f} MiB{marker} '
              f'| {row.peak["tiled"] / mib:,.0f} MiB{marker} | {row.peak["tiled"] / row.peak["whole"]:.3f} |')


def _size(text: str) -> tuple[int, int]:
    width, height = (int(value) for value in text.lower().split('x'))
    return width, height


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--models', nargs='+', default=list(PAPER_MODELS), choices=list(PAPER_MODELS))
    parser.add_argument('--scales', type=int, nargs='+', default=[4], choices=[2, 3, 4],
                        help='default 4 only: the cheapest scale; 2 and 3 cost 2.8x and 1.4x as much')
    parser.add_argument('--runs', type=int, default=1, help='timed runs per mode (default 1)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed full-size runs per mode first (default 0 on the CPU, 1 on CUDA: cuDNN '
                             'picks its algorithms per shape on the first run)')
    parser.add_argument('--output', type=_size, default=(OUTPUT[1], OUTPUT[0]), metavar='WxH',
                        help='output size (default 1280x720); the input is its ceil(size / scale)')
    parser.add_argument('--tile', type=int, default=128, help='tile size in LR pixels (default 128)')
    parser.add_argument('--overlap', type=int, default=16, help='tile overlap in LR pixels (default 16)')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'])
    parser.add_argument('--trace-only', action='store_true',
                        help='no runs: peak memory traced on fake tensors (fp32), no latency')
    args = parser.parse_args(argv)
    args.output = args.output[::-1]  # height, width from here on
    if args.warmup is None:
        args.warmup = 1 if torch.device(args.device).type == 'cuda' else 0
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    where = prepare_benchmark_device(args.device, args.threads)
    size = f'output {args.output[1]}x{args.output[0]}, tiles {args.tile} LR pixels with {args.overlap} overlap'
    if args.trace_only:
        print(f'torch {torch.__version__}; {size}; peak memory traced on fake tensors, nothing run\n')
    else:
        print(f'torch {torch.__version__}, {where}, {args.precision}; {size}; {args.runs} timed run(s) per mode '
              f'after {args.warmup} full warm-up run(s); memory measured around the first timed run\n')
    rows = []
    for name in args.models:
        for scale in args.scales:
            start = time.perf_counter()
            rows.append(measure(name, scale, args))
            print(f'{name} x{scale} done in {time.perf_counter() - start:.0f} s', file=sys.stderr, flush=True)
    print_table(rows, args)
    return rows


if __name__ == '__main__':
    main()
