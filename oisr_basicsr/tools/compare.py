"""Compare models side by side: parameters, MACs, latency and PSNR / SSIM on benchmark HR folders, and the visual
comparison figure; the work of ``oisr compare``, whose command line and help (what is measured, and how) are
:mod:`oisr_cli.commands.compare`."""

import argparse
import csv
import io
import math
import statistics
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from torch import nn
from tqdm import tqdm

from ..archs.bicubic_arch import Bicubic
from ..complexity import MACS_OUTPUT_SIZE, network_complexity
from ..data.benchmark_hr_dataset import BenchmarkHRDataset
from ..errors import InferenceError, UsageError, UserError, error_status
from ..images import IMAGE_SUFFIXES
from ..inference.loading import build_network_from_options, load_option_file, weights_path
from ..inference.upsampler import NODESRUpsampler, Upsampler, network_upsampler, resolve_device, upsampling_scale
from ..model_capabilities import serves_any_scale
from ..models.nodesr import NODESR
from ..outputs import DEFAULT_RULES, OutputRules, check_output_folder, check_output_path, write_text
from .comparison_figure import CropBox, draw_figure, figure_panels, figure_paths, resolve_figure_requests, write_figure
from .comparison_report import render_report
from .plot_files import pyplot, write_png

DEFAULT_PROTOCOL = 'rgb'
PLOT_EXTRA = 'pip install -e ".[plot]" (or pip install matplotlib)'
OUTPUT_FILES = {'markdown': 'comparison.md', 'csv': 'comparison.csv', 'plot': 'psnr_vs_macs.png',
                'html': 'comparison.html'}


@dataclass
class ModelResult:
    """Everything measured for one model; ``metrics`` maps a dataset to ``(psnr, ssim)``, the mean of
    ``per_image`` (dataset to image file name to ``(psnr, ssim)``); ``crops`` holds the result's pixels in
    each ``--figure`` box."""

    label: str
    arch: str
    scale: int
    weights: str
    params: int
    macs: int
    latency_ms: dict[str, float]
    metrics: dict[str, tuple[float, float]]
    protocols: dict[str, str] = field(default_factory=dict)
    per_image: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    crops: dict[CropBox, np.ndarray] = field(default_factory=dict)


@dataclass
class FolderScores:
    """One model's PSNR / SSIM on each image of a folder, and its result in the boxes asked for.

    Args:
        per_image: Image file name to ``(psnr, ssim)``, in the folder's order.
        crops: Box to the result's 8-bit pixels inside it (BGR, or one channel with ``matlab_y``).
    """

    per_image: dict[str, tuple[float, float]]
    crops: dict[CropBox, np.ndarray]

    @property
    def mean(self) -> tuple[float, float]:
        """``(psnr, ssim)`` averaged over the images."""
        psnrs, ssims = zip(*self.per_image.values(), strict=True)
        return float(np.mean(psnrs)), float(np.mean(ssims))


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


def evaluation_scale(option_file: str | Path, opt: dict, scale: int | None = None) -> int:
    """The scale a model is measured at: its network's, or ``scale`` for a model that serves any (NODE-SR).

    Args:
        option_file: The model's option file, for messages.
        opt: Its options.
        scale: The ``--scale`` asked for; a fixed-scale model accepts only its own (or ``None``).
    """
    if scale is None and serves_any_scale(opt):
        raise UsageError(f'{option_file}: NODE-SR serves any scale; give the one to compare at with --scale (an '
                         'integer >= 2, as the benchmark protocol needs)')
    try:
        return upsampling_scale(opt, scale)
    except InferenceError as error:
        raise UsageError(f'{option_file}: {error}') from None


def model_macs(option_file: str | Path, opt: dict, net: nn.Module, scale: int) -> int:
    """MACs for a 1280x720 HR output: the network's, or for NODE-SR one solve's (evaluations x network)."""
    if not any(True for _ in net.parameters()):
        return 0  # count_macs needs a parameter to find the device; a network without any costs no MACs we count
    if not serves_any_scale(opt):
        return network_complexity(opt['network_g'], scale, MACS_OUTPUT_SIZE)['macs']
    try:
        return NODESR.from_options(net, opt, scale).macs(MACS_OUTPUT_SIZE, opt['network_g'].get('num_in_ch', 3))
    except ValueError as error:  # the ode block, or an adaptive solver, whose evaluations depend on the image
        raise UsageError(f'{option_file}: {error}') from None


def evaluate_folder(upsampler: Upsampler | NODESRUpsampler, hr_dir: Path, progress: bool = True,
                    protocol: dict | None = None) -> tuple[float, float]:
    """Mean PSNR and SSIM over the HR images of ``hr_dir``: :func:`score_folder`'s values averaged.

    Args:
        upsampler, hr_dir, progress, protocol: As for :func:`score_folder`.

    Returns:
        ``(psnr, ssim)``.
    """
    return score_folder(upsampler, hr_dir, progress, protocol).mean


def score_folder(upsampler: Upsampler | NODESRUpsampler, hr_dir: Path, progress: bool = True,
                 protocol: dict | None = None, boxes: Sequence[CropBox] = (),
                 images: Collection[str] | None = None) -> FolderScores:
    """PSNR and SSIM of each HR image of ``hr_dir`` with the paper protocol (module docstring).

    Args:
        upsampler: The model (see :func:`oisr_basicsr.inference.upsampler.build_upsampler`).
        hr_dir: Folder of 8-bit HR images, read as ``python -m oisr_basicsr.test`` reads them with
            ``BenchmarkHRDataset`` (with ``rgb``, a grayscale file becomes three equal channels; with
            ``matlab_y``, it is its own Y channel).
        progress: Show a tqdm bar over the images.
        protocol: ``BenchmarkHRDataset`` options: ``protocol`` (``rgb`` or ``matlab_y``) and ``modcrop``.
        boxes: Boxes of this folder's images whose result pixels to keep.
        images: Measure only the files of these names; ``None``: all.

    Returns:
        The values per image and the kept pixels.
    """
    scale = upsampler.scale
    dataset = BenchmarkHRDataset({'name': hr_dir.name, 'dataroot_gt': str(hr_dir), 'scale': scale, 'phase': 'test',
                                  **(protocol or {})})
    indices = [index for index, path in enumerate(dataset.paths) if images is None or Path(path).name in images]
    scores = FolderScores(per_image={}, crops={})
    for index in tqdm(indices, desc=str(hr_dir), unit='image', leave=False, disable=not progress):
        try:
            item = dataset[index]
        except ValueError as error:  # an undecodable image, named by the dataset
            raise UsageError(str(error)) from None
        # What SRModel's validation measures: 8-bit images from the output and GT tensors, then BasicSR's metrics.
        sr = tensor2img([upsampler(item['lq'][None])])
        gt = tensor2img([item['gt'][None]])
        name = Path(item['gt_path']).name
        scores.per_image[name] = (calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True),
                                  calculate_ssim(sr, gt, crop_border=scale, test_y_channel=True))
        scores.crops.update({box: box.cut(sr).copy() for box in boxes if box.image == name})
    return scores


def measure_latency(upsampler: Upsampler | NODESRUpsampler, output_size: tuple[int, int], runs: int,
                    warmup: int) -> float:
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
            progress: bool = True,
            scale: int | None = None,
            figures: Sequence[CropBox] = ()) -> list[ModelResult]:
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
        scale: The scale models that serve any scale (NODE-SR) are measured at (see :func:`evaluation_scale`).
        figures: Boxes whose result pixels each model keeps (see :func:`resolve_figure_requests`).

    Returns:
        One result per option file, in order.
    """
    if labels is not None and len(labels) != len(option_files):
        raise UsageError(f'{len(labels)} labels given for {len(option_files)} option files')
    # Every model is built before any is measured, so that a bad option file or checkpoint fails in seconds.
    options = [load_option_file(option_file) for option_file in option_files]
    scales = [evaluation_scale(option_file, opt, scale) for option_file, opt in zip(option_files, options, strict=True)]
    nets = [build_network_from_options(opt, allow_random=allow_random) for opt in options]
    macs = [model_macs(*model) for model in zip(option_files, options, nets, scales, strict=True)]
    for option_file, opt, net, model_scale in zip(option_files, options, nets, scales, strict=True):
        channels = _input_channels(net)
        for name in datasets:
            if dataset_protocol(opt, name).get('protocol') == 'matlab_y' and channels not in (None, 1):
                raise UsageError(f'{option_file}: dataset {name} has protocol: matlab_y, which gives single-channel '
                                 f'Y images, but network_g ({opt["network_g"]["type"]}) reads {channels} channels')
        for box in figures:
            box.check_modcrop(dataset_protocol(opt, box.dataset).get('modcrop', model_scale), option_file)
    results = []
    for index, (option_file, opt, net, model_scale) in enumerate(zip(option_files, options, nets, scales,
                                                                      strict=True)):
        num_params = sum(p.numel() for p in net.parameters())
        latency = {}
        for name in latency_devices:
            timed = network_upsampler(opt, net, model_scale, resolve_device(name))
            latency[timed.device.type] = measure_latency(timed, latency_size, latency_runs, warmup)
        # Built after the timed ones: each moves the network to its device.
        upsampler = network_upsampler(opt, net, model_scale, resolve_device(device))
        protocols = {name: dataset_protocol(opt, name) for name in datasets}
        scores = {name: score_folder(upsampler, folder, progress, protocols[name],
                                     [box for box in figures if box.dataset == name])
                  for name, folder in datasets.items()}
        weights = (opt.get('path') or {}).get('pretrain_network_g')
        results.append(ModelResult(
            label=labels[index] if labels is not None else opt.get('name', Path(option_file).stem),
            arch=opt['network_g']['type'], scale=model_scale, weights=str(weights) if weights else 'none',
            params=num_params, macs=macs[index], latency_ms=latency,
            protocols={name: protocol.get('protocol', DEFAULT_PROTOCOL) for name, protocol in protocols.items()},
            **_measured(scores)))
    return results


def _measured(scores: dict[str, FolderScores]) -> dict:
    """A :class:`ModelResult`'s ``metrics``, ``per_image`` and ``crops`` from its scores per dataset."""
    return {'metrics': {name: score.mean for name, score in scores.items()},
            'per_image': {name: score.per_image for name, score in scores.items()},
            'crops': {box: crop for score in scores.values() for box, crop in score.crops.items()}}


def bicubic_references(results: Sequence[ModelResult], datasets: dict[str, Path], figures: Sequence[CropBox],
                       device: str | None = None, progress: bool = True) -> list[ModelResult]:
    """Bicubic on the images of ``figures``, at each scale of ``results`` that no ``Bicubic`` model has.

    It is measured as the models are (:func:`score_folder`), with the protocol of the first model of its scale.

    Args:
        results: The compared models.
        datasets: Dataset name to HR folder.
        figures: The boxes (bicubic is measured on their images alone).
        device: Device to run on; ``None`` picks the GPU when there is one.
        progress: Show tqdm bars.

    Returns:
        One result per such scale, labelled ``Bicubic`` (``Bicubic xS`` when there are several scales).
    """
    scales = sorted({result.scale for result in results})
    references = []
    for scale in scales:
        if not figures or any(result.arch == 'Bicubic' and result.scale == scale for result in results):
            continue
        first = next(result for result in results if result.scale == scale)
        upsampler = Upsampler(Bicubic(upscale=scale), scale, resolve_device(device))
        protocols = {name: first.protocols.get(name, DEFAULT_PROTOCOL) for name in datasets}
        boxes_by_dataset = {name: [box for box in figures if box.dataset == name] for name in datasets}
        scores = {name: score_folder(upsampler, datasets[name], progress, {'protocol': protocols[name]}, boxes,
                                     images={box.image for box in boxes})
                  for name, boxes in boxes_by_dataset.items() if boxes}
        references.append(ModelResult(
            label='Bicubic' if len(scales) == 1 else f'Bicubic x{scale}', arch='Bicubic', scale=scale,
            weights='none', params=0, macs=0, latency_ms={},
            protocols={name: protocols[name] for name in scores}, **_measured(scores)))
    return references


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


def comparison_table(results: Sequence[ModelResult], latency_size: tuple[int, int] | None = None
                     ) -> tuple[list[str], list[list[str]], list[str]]:
    """The comparison table in the layout of the OISR paper's Tables 2 and 3: header, rows of cells, and the
    notes under it (with Markdown inline code)."""
    datasets = list(results[0].metrics)
    devices = _latency_devices(results)
    header = ['Model', 'Scale', 'Params', 'MACs (720p)', *(f'{d.upper()} latency (ms)' for d in devices)]
    header += [f'{name} PSNR / SSIM' for name in datasets]
    rows = []
    for r in results:
        cells = [r.label, f'x{r.scale}', f'{r.params / 1e6:.2f}M', f'{r.macs / 1e9:.1f}G']
        cells += [f'{r.latency_ms[d]:.0f}' if d in r.latency_ms else '-' for d in devices]
        cells += [f'{r.metrics[name][0]:.2f} / {r.metrics[name][1]:.4f}'
                  + (' (Y)' if r.protocols.get(name) == 'matlab_y' else '') for name in datasets]
        rows.append(cells)
    notes = ['PSNR / SSIM: Y channel, `scale` pixels shaved, MATLAB-bicubic LR, 8-bit SR. '
             'MACs: conv weights x output pixels for a 1280x720 HR output.']
    if any(protocol == 'matlab_y' for r in results for protocol in r.protocols.values()):
        notes.append('(Y): `protocol: matlab_y`, the Y channel alone with an unrounded LR, as in the published '
                     'bicubic rows.')
    if devices and latency_size is not None:
        notes.append(f'Latency: median forward pass for a {latency_size[1]}x{latency_size[0]} HR output.')
    return header, rows, notes


def format_markdown(results: Sequence[ModelResult], latency_size: tuple[int, int] | None = None) -> str:
    """The comparison as a Markdown table (:func:`comparison_table`)."""
    header, rows, notes = comparison_table(results, latency_size)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
    return '\n'.join(lines + [''] + notes) + '\n'


def missing_plot_dependency() -> str | None:
    """Why the plot cannot be drawn (with how to install what it needs), or ``None`` when it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        return f'matplotlib cannot be imported ({error}); {PLOT_EXTRA}'
    return None


def plot_psnr_vs_macs(results: Sequence[ModelResult], path: Path, rules: OutputRules = DEFAULT_RULES) -> None:
    """PSNR against MACs, one panel per dataset, written atomically as a PNG."""
    plt = pyplot()
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
    write_png(fig, path, dpi=120, rules=rules)


def output_rules(option_files: Sequence[str | Path], datasets: dict[str, Path]) -> OutputRules:
    """What a comparison reads, which its outputs may never replace: the option files, their weights and the
    dataset images."""
    images = [path for folder in datasets.values() for path in sorted(folder.iterdir())
              if path.suffix.lower() in IMAGE_SUFFIXES]
    weights = [weights_path(load_option_file(path)) for path in option_files]
    return OutputRules({'an option file': option_files, 'the weights of an option file': weights,
                        'a dataset image': images})


def check_outputs(output_dir: Path, rules: OutputRules = DEFAULT_RULES, figures: Sequence[CropBox] = ()) -> None:
    """Refuse, before anything is measured, an ``output_dir`` that is not a folder and outputs (the figures' too)
    that cannot be written there (:mod:`oisr_basicsr.outputs`)."""
    check_output_folder(output_dir, rules)
    for path in [*(output_dir / name for name in OUTPUT_FILES.values()),
                 *(path for box in figures for path in figure_paths(output_dir, box).values())]:
        check_output_path(path, rules)


def write_outputs(results: Sequence[ModelResult], output_dir: Path,
                  latency_size: tuple[int, int] | None = None, plot: bool = True, plot_note: str | None = None,
                  figures: Sequence[CropBox] = (), references: Sequence[ModelResult] = (),
                  rules: OutputRules = DEFAULT_RULES) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv``, (with ``plot``) ``psnr_vs_macs.png``, each figure's PNG and
    PDF, and ``comparison.html`` into ``output_dir``, each atomically: an interrupted run leaves the previous
    file or none, never half of one.

    Args:
        results: The compared models.
        output_dir: Created if missing.
        latency_size: The HR size latency was measured for, named in the notes; ``None``: not timed.
        plot: Draw the PSNR-vs-MACs plot (it needs matplotlib).
        plot_note: Why there is no plot, for the HTML report.
        figures: The ``--figure`` boxes (they need matplotlib); ``results`` hold their crops.
        references: Bicubic results for the figures (:func:`bicubic_references`), drawn before the models.
        rules: The run's inputs, which no output may replace (:func:`output_rules`).

    Returns:
        Every written file by a key: ``markdown``, ``csv``, ``plot``, ``<figure stem>.png`` / ``.pdf``, ``html``.
    """
    check_outputs(output_dir, rules, figures)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / OUTPUT_FILES[key] for key in ('markdown', 'csv')}
    markdown, table = format_markdown(results, latency_size), format_csv(results)
    for key, text in (('markdown', markdown), ('csv', table)):
        write_text(paths[key], text, rules)
    if plot:
        paths['plot'] = output_dir / OUTPUT_FILES['plot']
        plot_psnr_vs_macs(results, paths['plot'], rules)
    figure_pngs = []
    for box in figures:
        hr = cv2.imread(str(box.path), cv2.IMREAD_COLOR)
        written = write_figure(draw_figure(box, hr, figure_panels(box, hr, [*references, *results])), output_dir, box,
                               rules)
        paths.update({path.name: path for path in written.values()})
        figure_pngs.append((box, written['png'].read_bytes()))
    paths['html'] = output_dir / OUTPUT_FILES['html']
    page = render_report(*comparison_table(results, latency_size), results,
                         paths['plot'].read_bytes() if plot else None, plot_note, figure_pngs)
    write_text(paths['html'], page, rules)
    return paths


def run(args: argparse.Namespace) -> int:
    """Run the comparison (the command line of ``oisr compare``: :mod:`oisr_cli.commands.compare`); returns the exit
    status."""
    latency_devices = args.latency_devices
    if latency_devices is None:
        latency_devices = ['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu']
    latency_size = tuple(args.latency_size)
    # Checked before anything is computed: a missing plotting library costs the plot, never the results.
    plot_problem = missing_plot_dependency()
    if plot_problem and args.figure:  # the figures are what was asked for: no point in measuring without them
        return error_status(UsageError(f'--figure needs matplotlib: {plot_problem}'))
    if plot_problem:
        print(f'note: the PSNR-vs-MACs plot will be skipped: {plot_problem}', file=sys.stderr)
    try:
        datasets = resolve_datasets(args.datasets, args.data_root)
        figures = resolve_figure_requests(args.figure, datasets)
        rules = output_rules(args.opt, datasets)
        check_outputs(args.output_dir, rules, figures)
        results = compare(args.opt, datasets, labels=args.labels, device=args.device, latency_devices=latency_devices,
                          latency_size=latency_size, latency_runs=args.latency_runs, warmup=args.warmup,
                          allow_random=args.allow_random, progress=args.progress, scale=args.scale,
                          figures=figures)
        references = bicubic_references(results, datasets, figures, args.device, args.progress)
    except UserError as error:
        return error_status(error)
    shown_latency = latency_size if latency_devices else None
    print(format_markdown(results, shown_latency))
    try:
        paths = write_outputs(results, args.output_dir, shown_latency, plot=plot_problem is None,
                              plot_note=f'plot skipped: {plot_problem}' if plot_problem else None, figures=figures,
                              references=references, rules=rules)
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
    from oisr_cli.commands.compare import main  # the command line is the `oisr` command's

    sys.exit(main())
