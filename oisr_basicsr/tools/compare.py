"""Compare models side by side: parameters, MACs, latency and PSNR / SSIM on benchmark HR folders.

    oisr compare -opt options/test_OISR_LF_s_x2.yml options/test_OISR_RK2_s_x2.yml \\
        --datasets Set5 Set14 B100 --data-root datasets --output-dir results/comparison

Each ``-opt`` file gives a model: ``network_g`` (any registered architecture: OISR, EDSR, RCAN,
SwinIR, Bicubic, ...), its weights (``path.pretrain_network_g``) and its scale. Per model it measures

- parameters and MACs for a 1280x720 HR output (``oisr_basicsr.complexity``; conv weights
  times output pixels, the papers' convention);
- latency: median of ``--latency-runs`` forward passes (after ``--warmup`` passes) for a
  ``--latency-size`` HR output, on the CPU and, when there is one, the GPU;
- PSNR / SSIM per dataset with the paper protocol: HR cropped to a multiple of the scale, LR by
  MATLAB bicubic (``oisr_basicsr.data.resize.imresize_uint8``), SR quantised to 8 bits, Y channel,
  ``scale`` pixels shaved, BasicSR's ``calculate_psnr`` / ``calculate_ssim``. The images are made by
  ``BenchmarkHRDataset`` and measured as BasicSR's ``SRModel`` measures them, with the ``protocol``
  (and ``modcrop``) of the option file's dataset entry of the same ``name`` (``rgb`` when none names it
  and the file's entries do not all agree on one), so that a model's numbers equal those of
  ``python -m oisr_basicsr.test`` with its option file.

A dataset is a folder of HR images: ``<data-root>/<name>/HR`` (the layout of the shared benchmark
data), else ``<data-root>/<name>``, or a path to the folder itself. ``--output-dir`` receives
``comparison.md``, ``comparison.csv`` and ``psnr_vs_macs.png`` (one panel per dataset; networks
without parameters, like Bicubic, are drawn as horizontal lines), each written atomically, replacing the files of
an earlier comparison (never an option file, weights or dataset image; checked before any model is built). The plot
needs matplotlib (``pip install -e ".[plot]"``); without it the table and CSV are still written and
a line says why the plot is not. Errors are printed as ``error: <message>`` with exit status 2.
"""

import argparse
import csv
import io
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from torch import nn
from tqdm import tqdm

from ..checkpoints.loading import build_network_from_options, load_option_file, option_scale, weights_path
from ..complexity import MACS_OUTPUT_SIZE, network_complexity
from ..data.benchmark_hr_dataset import BenchmarkHRDataset
from ..errors import UsageError, UserError, error_status
from ..images import IMAGE_SUFFIXES
from ..inference.upsampler import Upsampler, resolve_device
from ..outputs import DEFAULT_RULES, OutputRules, atomic_output, check_output_folder, check_output_path, write_text
from .arguments import ArgumentParser, non_negative_int, positive_int

DEFAULT_PROTOCOL = 'rgb'
PLOT_EXTRA = 'pip install -e ".[plot]" (or pip install matplotlib)'
OUTPUT_FILES = {'markdown': 'comparison.md', 'csv': 'comparison.csv', 'plot': 'psnr_vs_macs.png'}


@dataclass
class ModelResult:
    """Everything measured for one model; ``metrics`` maps a dataset to ``(psnr, ssim)``."""

    label: str
    arch: str
    scale: int
    weights: str
    params: int
    macs: int
    latency_ms: dict[str, float]
    metrics: dict[str, tuple[float, float]]
    protocols: dict[str, str] = field(default_factory=dict)


def resolve_datasets(names: Sequence[str], data_root: str | Path | None) -> dict[str, Path]:
    """Dataset name to HR folder: ``<data_root>/<name>/HR``, ``<data_root>/<name>`` or ``name`` as a path.

    Args:
        names: Dataset names (``Set5``) or folder paths.
        data_root: Folder holding the datasets, or ``None`` to take the names as paths.

    Returns:
        The folders by name (a path's folder name; ``HR`` folders are named after their parent).
    """
    folders = {}
    for name in names:
        candidates = [Path(data_root) / name / 'HR', Path(data_root) / name] if data_root is not None else []
        candidates.append(Path(name))
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            raise UsageError(f'dataset {name}: none of {", ".join(map(str, candidates))} is a folder')
        if folder == Path(name):
            resolved = folder.resolve()
            label = resolved.parent.name if resolved.name == 'HR' else resolved.name
        else:
            label = name
        if label in folders:
            raise UsageError(f'dataset {label} is given twice')
        folders[label] = folder
    return folders


def dataset_protocol(opt: dict, dataset: str) -> dict:
    """``protocol`` and ``modcrop`` of the option file's dataset entry named ``dataset``, as
    ``BenchmarkHRDataset`` reads them in ``python -m oisr_basicsr.test``.

    Without such an entry, the protocol all the file's test / validation entries share, else ``rgb``.
    """
    entries = [entry for phase, entry in (opt.get('datasets') or {}).items()
               if phase != 'train' and isinstance(entry, dict)]
    named = next((entry for entry in entries if entry.get('name') == dataset), None)
    if named is not None:
        return {key: named[key] for key in ('protocol', 'modcrop') if key in named}
    protocols = {entry.get('protocol', DEFAULT_PROTOCOL) for entry in entries}
    return {'protocol': protocols.pop()} if len(protocols) == 1 else {}


def _input_channels(net: nn.Module) -> int | None:
    first_conv = next((module for module in net.modules() if isinstance(module, nn.Conv2d)), None)
    return None if first_conv is None else first_conv.in_channels


def evaluate_folder(upsampler: Upsampler, hr_dir: Path, progress: bool = True,
                    protocol: dict | None = None) -> tuple[float, float]:
    """Mean PSNR and SSIM over the HR images of ``hr_dir`` with the paper protocol (module docstring).

    Args:
        upsampler: The model (see :func:`oisr_basicsr.inference.upsampler.build_upsampler`).
        hr_dir: Folder of 8-bit HR images, read as ``python -m oisr_basicsr.test`` reads them with
            ``BenchmarkHRDataset`` (with ``rgb``, a grayscale file becomes three equal channels; with
            ``matlab_y``, it is its own Y channel).
        progress: Show a tqdm bar over the images.
        protocol: ``BenchmarkHRDataset`` options: ``protocol`` (``rgb`` or ``matlab_y``) and ``modcrop``.

    Returns:
        ``(psnr, ssim)`` averaged over the images.
    """
    scale = upsampler.scale
    dataset = BenchmarkHRDataset({'name': hr_dir.name, 'dataroot_gt': str(hr_dir), 'scale': scale, 'phase': 'test',
                                  **(protocol or {})})
    psnrs, ssims = [], []
    for index in tqdm(range(len(dataset)), desc=str(hr_dir), unit='image', leave=False, disable=not progress):
        try:
            item = dataset[index]
        except ValueError as error:  # an undecodable image, named by the dataset
            raise UsageError(str(error)) from None
        # What SRModel's validation measures: 8-bit images from the output and GT tensors, then BasicSR's metrics.
        sr = tensor2img([upsampler(item['lq'][None])])
        gt = tensor2img([item['gt'][None]])
        psnrs.append(calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True))
        ssims.append(calculate_ssim(sr, gt, crop_border=scale, test_y_channel=True))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def measure_latency(upsampler: Upsampler, output_size: tuple[int, int], runs: int, warmup: int) -> float:
    """Median wall time in milliseconds of one forward pass for an HR output of ``output_size``.

    The random LR input is already on the upsampler's device; the time includes padding, the
    network and the copy of the result back to the CPU.
    """
    lq_size = [math.ceil(size / upsampler.scale) for size in output_size]
    lq = torch.rand(1, 3, *lq_size, device=upsampler.device)
    times = []
    for i in range(warmup + runs):
        if upsampler.device.type == 'cuda':
            torch.cuda.synchronize(upsampler.device)
        start = time.perf_counter()
        upsampler(lq)
        if upsampler.device.type == 'cuda':
            torch.cuda.synchronize(upsampler.device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare(option_files: Sequence[str | Path],
            datasets: dict[str, Path],
            labels: Sequence[str] | None = None,
            device: str | None = None,
            latency_devices: Sequence[str] = (),
            latency_size: tuple[int, int] = (720, 1280),
            latency_runs: int = 5,
            warmup: int = 2,
            allow_random: bool = False,
            progress: bool = True) -> list[ModelResult]:
    """Measure every model of ``option_files``.

    Args:
        option_files: BasicSR option files, one per model.
        datasets: Dataset name to HR folder (see :func:`resolve_datasets`).
        labels: Row labels; default each file's ``name`` option (its stem when there is none).
        device: Device for PSNR / SSIM; ``None`` picks the GPU when there is one.
        latency_devices: Devices to time on (``cpu``, ``cuda``); empty skips timing.
        latency_size: HR output ``(height, width)`` the latency is measured for.
        latency_runs: Timed forward passes (their median is reported).
        warmup: Untimed passes before them.
        allow_random: Evaluate networks whose option file names no weights with random ones.
        progress: Show tqdm bars.

    Returns:
        One result per option file, in order.
    """
    if labels is not None and len(labels) != len(option_files):
        raise UsageError(f'{len(labels)} labels given for {len(option_files)} option files')
    # Every model is built before any is measured, so that a bad option file or checkpoint fails in seconds.
    options = [load_option_file(option_file) for option_file in option_files]
    nets = [build_network_from_options(opt, allow_random=allow_random) for opt in options]
    for option_file, opt, net in zip(option_files, options, nets, strict=True):
        channels = _input_channels(net)
        for name in datasets:
            if dataset_protocol(opt, name).get('protocol') == 'matlab_y' and channels not in (None, 1):
                raise UsageError(f'{option_file}: dataset {name} has protocol: matlab_y, which gives single-channel '
                                 f'Y images, but network_g ({opt["network_g"]["type"]}) reads {channels} channels')
    results = []
    for index, (option_file, opt, net) in enumerate(zip(option_files, options, nets, strict=True)):
        scale = option_scale(opt)
        num_params = sum(p.numel() for p in net.parameters())
        # count_macs needs a parameter to find the device; a network without any costs no MACs we count.
        macs = network_complexity(opt['network_g'], scale, MACS_OUTPUT_SIZE)['macs'] if num_params else 0
        pad_multiple = opt['network_g'].get('window_size', 1)
        latency = {}
        for name in latency_devices:
            timed = Upsampler(net, scale, resolve_device(name), pad_multiple=pad_multiple)
            latency[timed.device.type] = measure_latency(timed, latency_size, latency_runs, warmup)
        upsampler = Upsampler(net, scale, resolve_device(device), pad_multiple=pad_multiple)
        protocols = {name: dataset_protocol(opt, name) for name in datasets}
        metrics = {name: evaluate_folder(upsampler, folder, progress, protocols[name])
                   for name, folder in datasets.items()}
        weights = (opt.get('path') or {}).get('pretrain_network_g')
        results.append(ModelResult(
            label=labels[index] if labels is not None else opt.get('name', Path(option_file).stem),
            arch=opt['network_g']['type'], scale=scale, weights=str(weights) if weights else 'none',
            params=num_params, macs=macs, latency_ms=latency, metrics=metrics,
            protocols={name: protocol.get('protocol', DEFAULT_PROTOCOL) for name, protocol in protocols.items()}))
    return results


def _latency_devices(results: Sequence[ModelResult]) -> list[str]:
    return sorted({name for result in results for name in result.latency_ms})


def format_csv(results: Sequence[ModelResult]) -> str:
    """One row per model: label, arch, scale, weights, params, MACs, latencies, ``<dataset>_psnr`` / ``_ssim`` /
    ``_protocol``."""
    datasets = list(results[0].metrics)
    devices = _latency_devices(results)
    header = ['model', 'arch', 'scale', 'weights', 'params', 'macs_720p', *(f'latency_{d}_ms' for d in devices)]
    header += [f'{name}_{column}' for name in datasets for column in ('psnr', 'ssim', 'protocol')]
    text = io.StringIO(newline='')
    writer = csv.writer(text)
    writer.writerow(header)
    for r in results:
        row = [r.label, r.arch, r.scale, r.weights, r.params, r.macs]
        row += [f'{r.latency_ms[d]:.1f}' if d in r.latency_ms else '' for d in devices]
        row += [value for name in datasets for value in (f'{r.metrics[name][0]:.4f}', f'{r.metrics[name][1]:.6f}',
                                                         r.protocols.get(name, DEFAULT_PROTOCOL))]
        writer.writerow(row)
    return text.getvalue()


def format_markdown(results: Sequence[ModelResult], latency_size: tuple[int, int] | None = None) -> str:
    """The comparison as a Markdown table in the layout of the OISR paper's Tables 2 and 3."""
    datasets = list(results[0].metrics)
    devices = _latency_devices(results)
    header = ['Model', 'Scale', 'Params', 'MACs (720p)', *(f'{d.upper()} latency (ms)' for d in devices)]
    header += [f'{name} PSNR / SSIM' for name in datasets]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in results:
        cells = [r.label, f'x{r.scale}', f'{r.params / 1e6:.2f}M', f'{r.macs / 1e9:.1f}G']
        cells += [f'{r.latency_ms[d]:.0f}' if d in r.latency_ms else '-' for d in devices]
        cells += [f'{r.metrics[name][0]:.2f} / {r.metrics[name][1]:.4f}'
                  + (' (Y)' if r.protocols.get(name) == 'matlab_y' else '') for name in datasets]
        lines.append('| ' + ' | '.join(cells) + ' |')
    notes = ['', 'PSNR / SSIM: Y channel, `scale` pixels shaved, MATLAB-bicubic LR, 8-bit SR. '
             'MACs: conv weights x output pixels for a 1280x720 HR output.']
    if any(protocol == 'matlab_y' for r in results for protocol in r.protocols.values()):
        notes.append('(Y): `protocol: matlab_y`, the Y channel alone with an unrounded LR, as in the published '
                     'bicubic rows.')
    if devices and latency_size is not None:
        notes.append(f'Latency: median forward pass for a {latency_size[1]}x{latency_size[0]} HR output.')
    return '\n'.join(lines + notes) + '\n'


def missing_plot_dependency() -> str | None:
    """Why the plot cannot be drawn (with how to install what it needs), or ``None`` when it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        return f'matplotlib cannot be imported ({error}); {PLOT_EXTRA}'
    return None


def plot_psnr_vs_macs(results: Sequence[ModelResult], path: Path, rules: OutputRules = DEFAULT_RULES) -> None:
    """PSNR against MACs, one panel per dataset, written atomically as a PNG."""
    import matplotlib
    matplotlib.use('Agg')  # files only; never needs a display
    from matplotlib import pyplot as plt

    datasets = list(results[0].metrics)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 4), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        # A legend, not labels beside the points: equal-cost models share an x position and often a PSNR too.
        for index, r in enumerate(results):
            label, psnr = f'{r.label} (x{r.scale})', r.metrics[name][0]
            if r.macs:
                ax.scatter(r.macs / 1e9, psnr, s=30 + 40 * r.params / 1e6, color=f'C{index}', label=label)
            else:
                ax.axhline(psnr, linestyle='--', linewidth=1, color=f'C{index}', label=label)
        ax.legend(fontsize=8)
        ax.set_title(name)
        ax.set_xlabel('MACs for a 720p output (G)')
        ax.set_ylabel('PSNR (dB, Y)')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_output(path, rules) as file:
            fig.savefig(file, format='png', dpi=120)
    finally:
        plt.close(fig)


def output_rules(option_files: Sequence[str | Path], datasets: dict[str, Path]) -> OutputRules:
    """What a comparison reads, which its outputs may never replace: the option files, their weights and the
    dataset images."""
    images = [path for folder in datasets.values() for path in sorted(folder.iterdir())
              if path.suffix.lower() in IMAGE_SUFFIXES]
    weights = [weights_path(load_option_file(path)) for path in option_files]
    return OutputRules({'an option file': option_files, 'the weights of an option file': weights,
                        'a dataset image': images})


def check_outputs(output_dir: Path, rules: OutputRules = DEFAULT_RULES) -> None:
    """Refuse, before anything is measured, an ``output_dir`` that is not a folder and outputs that cannot be
    written there (:mod:`oisr_basicsr.outputs`)."""
    check_output_folder(output_dir, rules)
    for name in OUTPUT_FILES.values():
        check_output_path(output_dir / name, rules)


def write_outputs(results: Sequence[ModelResult], output_dir: Path,
                  latency_size: tuple[int, int] | None = None, plot: bool = True,
                  rules: OutputRules = DEFAULT_RULES) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and (with ``plot``) ``psnr_vs_macs.png`` into ``output_dir``,
    each atomically: an interrupted run leaves the previous file or none, never half of one."""
    check_outputs(output_dir, rules)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / OUTPUT_FILES[key] for key in ('markdown', 'csv')}
    markdown, table = format_markdown(results, latency_size), format_csv(results)
    for key, text in (('markdown', markdown), ('csv', table)):
        write_text(paths[key], text, rules)
    if plot:
        paths['plot'] = output_dir / OUTPUT_FILES['plot']
        plot_psnr_vs_macs(results, paths['plot'], rules)
    return paths


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = ArgumentParser(prog='oisr compare', description=__doc__)
    parser.add_argument('-opt', nargs='+', required=True, help='option files, one per model')
    parser.add_argument('--labels', nargs='+', help='row labels (default: each option file\'s name)')
    parser.add_argument('--datasets', nargs='+', required=True, help='dataset names or HR folders')
    parser.add_argument('--data-root', help='folder holding <name>/HR or <name> for each dataset')
    parser.add_argument('--output-dir', required=True, type=Path, help='folder for the Markdown, CSV and plot')
    parser.add_argument('--device', help='device for PSNR / SSIM (default: cuda when available, else cpu)')
    parser.add_argument('--latency-devices', nargs='*', help='devices to time on (default: cpu, and cuda when '
                        'available); give none to skip timing')
    parser.add_argument('--latency-size', type=positive_int, nargs=2, default=[720, 1280], metavar=('H', 'W'),
                        help='HR output size the latency is measured for (default: 720 1280)')
    parser.add_argument('--latency-runs', type=positive_int, default=5, help='timed runs (default: 5)')
    parser.add_argument('--warmup', type=non_negative_int, default=2, help='untimed runs first (default: 2)')
    parser.add_argument('--allow-random', action='store_true',
                        help='evaluate networks whose option file names no weights with random weights')
    parser.add_argument('--no-progress', dest='progress', action='store_false', help='hide the progress bars')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    args = parse_args(argv)
    latency_devices = args.latency_devices
    if latency_devices is None:
        latency_devices = ['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu']
    latency_size = tuple(args.latency_size)
    # Checked before anything is computed: a missing plotting library costs the plot, never the results.
    plot_problem = missing_plot_dependency()
    if plot_problem:
        print(f'note: the PSNR-vs-MACs plot will be skipped: {plot_problem}', file=sys.stderr)
    try:
        datasets = resolve_datasets(args.datasets, args.data_root)
        rules = output_rules(args.opt, datasets)
        check_outputs(args.output_dir, rules)
        results = compare(args.opt, datasets, labels=args.labels, device=args.device, latency_devices=latency_devices,
                          latency_size=latency_size, latency_runs=args.latency_runs, warmup=args.warmup,
                          allow_random=args.allow_random, progress=args.progress)
    except UserError as error:
        return error_status(error)
    shown_latency = latency_size if latency_devices else None
    print(format_markdown(results, shown_latency))
    try:
        paths = write_outputs(results, args.output_dir, shown_latency, plot=plot_problem is None, rules=rules)
    except UserError as error:  # an output that appeared meanwhile where it may not be
        return error_status(error)
    except OSError as error:
        print(f'error: cannot write the results to {args.output_dir}: {error}', file=sys.stderr)
        return 2
    for path in paths.values():
        print(f'wrote {path}')
    if plot_problem:
        print(f'plot skipped: {plot_problem}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
