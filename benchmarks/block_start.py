"""How each ODE scheme starts training: feature growth per block, gradient norms and step scalars, per init.

    python -m benchmarks.block_start --train-dir ../shared/data/train/T91 [--iters 20] [--batch 4] [--patch 24] \\
        [--schemes lf rk2 rk3 euler midpoint heun ralston kutta3 ssprk3 rk4 rk38] [--inits paper near_identity]

Every network is an x2 OISR with 64 features and about the 32 body convolutions of the paper's Table 1
models: OISR-LF-s (``lf``, G-v2, 8 blocks), OISR-RK2-s (``rk2``, G-v3, 8 blocks), ``rk3`` with G-v2 and 11
blocks, EDSR-s (``euler`` with EDSR's G and frozen coefficients, 16 blocks) and each other tableau with G-v2
and ``32 // stages`` blocks. Each is built twice from the same seed, once per ``block_init``.

Measured on LR patches of real images (random ``2 * patch`` HR crops of ``--train-dir``, MATLAB-bicubic x2):

* growth: standard deviation of the features after block ``k`` over that of the head's output (the input of
  the first block), on a fixed probe batch; and the network's output standard deviation (an image in [0, 1]
  has about 0.25);
* the first ``--iters`` iterations of training as BasicSR's SRModel runs them (L1, Adam 0.9 / 0.999, the
  paper's lr 1e-4, batch ``--batch``): the L1 loss, the L2 norm of the whole gradient, the last block's growth,
  and how far the learned step scalars (``scale1`` ..., tableau entries) moved.

Two Markdown tables are printed. One torch thread by default; about 10 minutes on a shared 2-core CPU.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; registers OISR)
from oisr_basicsr.archs.ode_schemes import BLOCK_INITS, BUTCHER_TABLEAUS, steps_per_block
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.data.resize import imresize_uint8

SCALE = 2
BODY_CONVS = 32
# The paper's configurations of its own blocks, and EDSR-s (the Euler block with EDSR's G).
CONFIGS = {
    'lf': dict(g_variant='v2', num_block=8),
    'rk2': dict(g_variant='v3', num_block=8),
    'rk3': dict(g_variant='v2', num_block=11),
    'euler': dict(g_variant='edsr', num_block=16, learnable_coefficients=False),
}
SCHEMES = ('lf', 'rk2', 'rk3', *BUTCHER_TABLEAUS)
RECORD_AT = (0, 1, 2, 5, 10, 20, 50, 100)


def network_config(scheme: str) -> dict:
    """``OISR`` arguments of the ~32-convolution, 64-feature x2 network of ``scheme``."""
    if scheme in CONFIGS:
        return {'scheme': scheme, **CONFIGS[scheme]}
    return {'scheme': scheme, 'g_variant': 'v2', 'num_block': BODY_CONVS // steps_per_block(scheme)}


def load_patches(train_dir: Path, count: int, patch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random (LR, HR) patch pairs in [0, 1], RGB, LR ``patch`` x ``patch``."""
    paths = sorted(p for p in train_dir.iterdir() if p.suffix.lower() in ('.png', '.bmp', '.jpg'))
    if not paths:
        raise SystemExit(f'error: --train-dir {train_dir} holds no .png / .bmp / .jpg images')
    rng = np.random.default_rng(seed)
    lrs, hrs = [], []
    size = patch * SCALE
    while len(hrs) < count:
        image = cv2.imread(str(paths[rng.integers(len(paths))]), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < size:
            continue
        top, left = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
        hr = image[top:top + size, left:left + size, ::-1]
        lrs.append(imresize_uint8(np.ascontiguousarray(hr), 1 / SCALE))
        hrs.append(hr)

    def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)

    return to_tensor(lrs), to_tensor(hrs)


def block_growth(net: OISR, lq: torch.Tensor) -> tuple[list[float], float]:
    """Feature std after each block over the head's, and the output's std."""
    with torch.no_grad():
        features = net.conv_first(net.sub_mean(lq * net.img_range))
        head_std = features.std()
        growth = []
        for block in net.body.blocks:
            features = block(features)
            growth.append((features.std() / head_std).item())
        return growth, net(lq).std().item()


def step_scalars(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every learnable block scalar (a ``[1]`` parameter inside the body), detached copies by name."""
    return {name: param.detach().clone() for name, param in net.body.named_parameters() if param.shape == (1, )}


def measure(scheme: str, init: str, probe: torch.Tensor, train: tuple[torch.Tensor, torch.Tensor],
            args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    net = OISR(upscale=SCALE, num_feat=64, block_init=init, **network_config(scheme))
    growth, output_std = block_growth(net, probe)
    scalars_before = step_scalars(net)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    lq, gt = train
    history = {0: {'growth': growth[-1]}}
    for iteration in range(1, args.iters + 1):
        index = torch.arange((iteration - 1) * args.batch, iteration * args.batch) % len(lq)
        optimiser.zero_grad()
        loss = F.l1_loss(net(lq[index]), gt[index])
        loss.backward()
        grad_norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in net.parameters() if p.grad is not None)).item()
        optimiser.step()
        if iteration in RECORD_AT or iteration == args.iters:
            history[iteration] = {'loss': loss.item(), 'grad_norm': grad_norm,
                                  'growth': block_growth(net, probe)[0][-1]}
    moved = [(step_scalars(net)[name] - value).abs().item() for name, value in scalars_before.items()]
    return {'growth': growth, 'output_std': output_std, 'history': history,
            'scalar_shift': max(moved) if moved else None}


def format_tables(results: dict[tuple[str, str], dict], iters: int) -> str:
    columns = [1, 2, 4, 8, 16]
    lines = ['At initialisation: feature std after block k over the head\'s, and the output std', '',
             '| Scheme | block_init | Blocks | ' + ' | '.join(f'k={k}' for k in columns) + ' | last | output std |',
             '|' + '---|' * (len(columns) + 5)]
    for (scheme, init), result in results.items():
        growth = result['growth']
        cells = [f'{growth[k - 1]:.2f}' if k <= len(growth) else '' for k in columns]
        lines.append(f'| {scheme} | {init} | {len(growth)} | ' + ' | '.join(cells)
                     + f' | {growth[-1]:.2f} | {result["output_std"]:.3f} |')
    points = [p for p in RECORD_AT if 0 < p <= iters] + ([iters] if iters not in RECORD_AT else [])
    shown = [p for p in points if p in (1, 5, points[-1])]
    lines += ['', f'First {iters} iterations: L1 loss, gradient norm, last block\'s growth, largest scalar move', '',
              '| Scheme | block_init | ' + ' | '.join(f'loss @{p}' for p in shown) + ' | '
              + ' | '.join(f'grad norm @{p}' for p in shown) + ' | growth @0 | growth @' + str(iters)
              + ' | max scalar move |',
              '|' + '---|' * (2 * len(shown) + 5)]
    for (scheme, init), result in results.items():
        history = result['history']
        shift = '-' if result['scalar_shift'] is None else f'{result["scalar_shift"]:.4f}'
        lines.append(f'| {scheme} | {init} | ' + ' | '.join(f'{history[p]["loss"]:.4f}' for p in shown) + ' | '
                     + ' | '.join(f'{history[p]["grad_norm"]:.3g}' for p in shown)
                     + f' | {history[0]["growth"]:.2f} | {history[iters]["growth"]:.2f} | {shift} |')
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--train-dir', type=Path, required=True, help='folder of HR training images')
    parser.add_argument('--schemes', nargs='+', default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument('--inits', nargs='+', default=list(BLOCK_INITS), choices=BLOCK_INITS)
    parser.add_argument('--iters', type=int, default=20, help='training iterations per network (default: 20)')
    parser.add_argument('--batch', type=int, default=4, help='batch size (default: 4)')
    parser.add_argument('--patch', type=int, default=24, help='LR patch size (default: 24)')
    parser.add_argument('--probe', type=int, default=8, help='patches in the probe batch (default: 8)')
    parser.add_argument('--lr', type=float, default=1e-4, help='Adam learning rate (default: 1e-4, the paper\'s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default: 1)')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.batch < 1 or args.patch < 1 or args.probe < 1:
        parser.error('--iters, --batch, --patch and --probe must be positive')
    if not args.train_dir.is_dir():
        parser.error(f'--train-dir {args.train_dir} is not a folder')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    probe, _ = load_patches(args.train_dir, args.probe, args.patch, args.seed + 1)
    train = load_patches(args.train_dir, args.iters * args.batch, args.patch, args.seed)
    results = {}
    for scheme in args.schemes:
        for init in args.inits:
            results[scheme, init] = measure(scheme, init, probe, train, args)
            print(f'{scheme} {init}: last block {results[scheme, init]["growth"][-1]:.2f}x', flush=True)
    print(f'x2, 64 features, probe {args.probe} LR patches of {args.patch}x{args.patch}, seed {args.seed}; '
          f'Adam lr {args.lr:g}, batch {args.batch}')
    print(format_tables(results, args.iters))
    return 0


if __name__ == '__main__':
    sys.exit(main())
