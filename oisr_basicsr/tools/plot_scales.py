"""PSNR against the scale factor for a NODE-SR model, seen and unseen scales (the NODE-SR paper's Fig. 2): the
work of ``oisr plot-scales``, whose command line and help (the protocol, the default scales) are
:mod:`oisr_cli.commands.plot_scales`."""

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from basicsr.metrics import calculate_psnr

from ..data.continuous_scale_dataset import DEFAULT_SCALES, benchmark_pair
from ..data.preparation import list_image_files
from ..errors import UsageError, UserError, error_status
from ..inference.loading import build_network_from_options, load_option_file, weights_path
from ..model_capabilities import any_scale_models, serves_any_scale
from ..models.nodesr import NODESR
from ..outputs import DEFAULT_RULES, OutputRules, check_output_path, write_text
from .plot_files import pyplot, write_png

SEEN_SCALES = frozenset(DEFAULT_SCALES)
UNSEEN_SCALES = tuple(round(1.15 + 0.1 * k, 2) for k in range(29)) + (4.5, 5.0, 6.0, 8.0)


@dataclass(frozen=True)
class ScaleResult:
    """Mean PSNR over the folder at one scale."""

    scale: float
    seen: bool
    psnr_model: float
    psnr_bicubic: float


def default_scales() -> list[float]:
    """The seen training scales and the unseen ones, sorted."""
    return sorted(set(DEFAULT_SCALES) | set(UNSEEN_SCALES))


def is_seen(scale: float) -> bool:
    """Whether ``scale`` is one of NODE-SR's training scales 1.1, 1.2, ..., 4.0."""
    return round(float(scale), 6) in SEEN_SCALES


def load_nodesr(option_file: str | Path,
                weights: str | Path | None = None,
                allow_random: bool = False) -> tuple[NODESR, dict]:
    """The NODE-SR inference module of an option file (its dynamics network in eval mode, on the CPU) and the
    options."""
    if not Path(option_file).is_file():
        raise UsageError(f'option file not found: {option_file}')
    opt = load_option_file(option_file)
    if not serves_any_scale(opt):
        raise UsageError(f'{option_file} is not a NODE-SR option file (model_type: {opt.get("model_type")!r}, '
                         f'expected {" or ".join(any_scale_models())})')
    net = build_network_from_options(opt, weights, allow_random=allow_random)
    try:
        return NODESR.from_options(net.eval(), opt), opt
    except ValueError as error:
        raise UsageError(f'{option_file}: {error}') from None


def hr_image_files(hr_dir: str | Path) -> list[Path]:
    """The image files of an HR folder, sorted by name."""
    try:
        return list_image_files(hr_dir, 'HR folder')
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None


def read_hr_images(hr_dir: str | Path) -> list[np.ndarray]:
    """The 8-bit BGR images of a folder, sorted by name (grayscale ones as three equal channels)."""
    paths = hr_image_files(hr_dir)
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UsageError(f'cannot read image {path}')
        images.append(image)
    return images


def _to_uint8_bgr(x: torch.Tensor) -> np.ndarray:
    """``1 x 3 x H x W`` RGB in [0, 1] to an 8-bit HxWx3 BGR image (BasicSR's tensor2img rounding)."""
    rgb = x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().double().numpy()
    return np.round(rgb[..., ::-1] * 255).astype(np.uint8)


@torch.no_grad()
def psnr_at_scale(nodesr: NODESR,
                  hr_images: Sequence[np.ndarray],
                  scale: float,
                  device: torch.device | str = 'cpu') -> tuple[float, float]:
    """Mean ``(model PSNR, bicubic PSNR)`` over ``hr_images`` at ``scale`` (module docstring's protocol)."""
    shave = math.ceil(round(float(scale), 6))  # as NODESRModel's crop_border: scale
    model_psnr, bicubic_psnr = [], []
    for hr in hr_images:
        try:
            lr, reference = benchmark_pair(hr, scale)
        except ValueError as error:
            raise UsageError(f'scale {scale}: {error}') from None
        lq = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1].transpose(2, 0, 1))).float().div(255)[None]
        t0 = torch.full((1, ), float(scale), dtype=torch.float32, device=device)
        # What NODESRModel does with a benchmark item: I(t0) at the reference's size, then the solve.
        i0 = nodesr.initial_state(lq.to(device), t0, tuple(reference.shape[:2]))
        sr = nodesr.solve(i0, t0).final
        model_psnr.append(calculate_psnr(_to_uint8_bgr(sr), reference, crop_border=shave, test_y_channel=True))
        bicubic_psnr.append(calculate_psnr(_to_uint8_bgr(i0), reference, crop_border=shave, test_y_channel=True))
    return float(np.mean(model_psnr)), float(np.mean(bicubic_psnr))


def sweep(nodesr: NODESR,
          hr_images: Sequence[np.ndarray],
          scales: Sequence[float],
          device: torch.device | str = 'cpu',
          verbose: bool = False) -> list[ScaleResult]:
    """:func:`psnr_at_scale` at every scale, sorted by scale."""
    if not hr_images:
        raise UsageError('no HR images')
    nodesr = nodesr.to(device).eval()
    results = []
    for scale in sorted(float(s) for s in scales):
        if not scale >= 1:
            raise UsageError(f'scale {scale}: scales must be >= 1')
        psnr_model, psnr_bicubic = psnr_at_scale(nodesr, hr_images, scale, device)
        results.append(ScaleResult(scale, is_seen(scale), psnr_model, psnr_bicubic))
        if verbose:
            print(f'x{scale:g} ({"seen" if is_seen(scale) else "unseen"}): model {psnr_model:.2f} dB, '
                  f'bicubic {psnr_bicubic:.2f} dB', flush=True)
    return results


def plot(results: Sequence[ScaleResult], path: str | Path, title: str = '', label: str = 'NODE-SR',
         rules: OutputRules = DEFAULT_RULES) -> None:
    """PSNR against scale: model and bicubic lines, seen scales filled, unseen hollow; written (atomically) as a
    PNG."""
    scales = [r.scale for r in results]
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for name, values, color in ((label, [r.psnr_model for r in results], 'tab:red'),
                                ('Bicubic', [r.psnr_bicubic for r in results], 'tab:blue')):
        ax.plot(scales, values, '-', color=color, linewidth=1, label=name)
        seen = [(s, v) for s, v, r in zip(scales, values, results, strict=True) if r.seen]
        unseen = [(s, v) for s, v, r in zip(scales, values, results, strict=True) if not r.seen]
        if seen:
            ax.plot(*zip(*seen, strict=True), 'o', color=color, markersize=4)
        if unseen:
            ax.plot(*zip(*unseen, strict=True), 'o', markerfacecolor='white', markeredgecolor=color, markersize=4)
    # Legend entries for the marker styles alone.
    ax.plot([], [], 'o', color='gray', markersize=4, label='seen scale')
    ax.plot([], [], 'o', markerfacecolor='white', markeredgecolor='gray', markersize=4, label='unseen scale')
    ax.set_xlabel('scale factor')
    ax.set_ylabel('PSNR (dB, Y channel)')
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    write_png(fig, path, dpi=150, rules=rules)


def write_csv(results: Sequence[ScaleResult], path: str | Path, rules: OutputRules = DEFAULT_RULES) -> None:
    """Rows ``scale, seen (1 / 0), psnr_model, psnr_bicubic``, written atomically."""
    text = io.StringIO(newline='')
    writer = csv.writer(text)
    writer.writerow(['scale', 'seen', 'psnr_model', 'psnr_bicubic'])
    for r in results:
        writer.writerow([f'{r.scale:g}', int(r.seen), f'{r.psnr_model:.6f}', f'{r.psnr_bicubic:.6f}'])
    write_text(path, text.getvalue(), rules)


def check_outputs(option_file: str | Path, weights: str | Path | None, hr_dir: str | Path, output: str | Path,
                  csv_path: str | Path | None) -> OutputRules:
    """Refuse, before any work, outputs that cannot be written (:mod:`oisr_basicsr.outputs`) or that are the same
    file; returns the rules they are written under."""
    opt = load_option_file(option_file)
    rules = OutputRules({'the option file': option_file, 'the checkpoint': weights_path(opt, weights),
                         'an HR image': hr_image_files(hr_dir)})
    outputs = [check_output_path(path, rules) for path in (output, csv_path) if path is not None]
    if len({path.resolve() for path in outputs}) < len(outputs):
        raise UsageError(f'--output and --csv are the same file, {output}; give the CSV another name')
    return rules


def run(args: argparse.Namespace) -> int:
    """Run the sweep (the command line of ``oisr plot-scales``: :mod:`oisr_cli.commands.plot_scales`); returns the
    exit status."""
    try:
        rules = check_outputs(args.opt, args.weights, args.hr_dir, args.output, args.csv)
        nodesr, opt = load_nodesr(args.opt, args.weights, args.allow_random)
        hr_images = read_hr_images(args.hr_dir)
        try:
            device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        except RuntimeError:
            raise UsageError(f'--device {args.device!r} is not a device') from None
        results = sweep(nodesr, hr_images, args.scales or default_scales(), device, verbose=True)
    except UserError as error:
        return error_status(error)
    hr_dir = Path(args.hr_dir).resolve()
    dataset = hr_dir.parent.name if hr_dir.name == 'HR' else hr_dir.name
    try:
        plot(results, args.output, title=f'{opt.get("name", "NODE-SR")} on {dataset}',
             label=opt['network_g']['type'], rules=rules)
        print(f'wrote {args.output}')
        if args.csv:
            write_csv(results, args.csv, rules)
            print(f'wrote {args.csv}')
    except UserError as error:  # an output that appeared meanwhile where it may not be
        return error_status(error)
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.plot_scales import main  # the command line is the `oisr` command's

    sys.exit(main())
