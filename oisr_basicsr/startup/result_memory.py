"""Whether the largest result of a validation or test dataset fits in the memory of the run's device, estimated
from the image headers before anything is decoded."""

from dataclasses import dataclass
from pathlib import Path

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from ..data.continuous_scale_dataset import benchmark_sizes
from ..memory import check_result_fits, traced_forward_peak
from ..model_capabilities import serves_any_scale
from ..options import INPUT_CHANNEL_KEYS, OUTPUT_CHANNEL_KEYS, network_channels
from ..options.dataset_files import image_file
from ..safeguards.resume import run_device


def largest_result(dataset: dict, sizes: dict[str, dict], scale: int | None
                   ) -> tuple[str, str, tuple[int, int], tuple[int, int]] | None:
    """The image of a validation / test dataset with the largest result: its root key, its name, the network's
    input size and the result's size (``(H, W)`` each), as the dataset makes them; None where they are not known.

    Args:
        dataset: The ``datasets`` entry.
        sizes: Its image sizes, as :func:`~oisr_basicsr.options.dataset_files.check_dataset_images` reads them.
        scale: The option file's top-level ``scale``.
    """
    def pixels(item: tuple[str, tuple[int, int]]) -> int:
        return item[1][0] * item[1][1]

    if 'dataroot_lq' in sizes:
        if not isinstance(scale, int):
            return None
        name, (h, w) = max(sizes['dataroot_lq'].items(), key=pixels)
        return 'dataroot_lq', name, (h, w), (h * scale, w * scale)
    if 'dataroot_gt' not in sizes:
        return None
    name, (h, w) = max(sizes['dataroot_gt'].items(), key=pixels)
    if dataset.get('type') == 'BenchmarkHRDataset' and isinstance(scale, int):
        multiple = dataset.get('modcrop', scale)
        h, w = h - h % multiple, w - w % multiple  # its modcrop
        return 'dataroot_gt', name, (h // scale, w // scale), (h, w)
    if dataset.get('type') == 'ContinuousScalePairedDataset' and dataset.get('test_scale') is not None:
        lr_size, _, reference = benchmark_sizes(h, w, dataset['test_scale'])
        return 'dataroot_gt', name, lr_size, reference
    return None


def _traced_test_peak(opt: dict, input_shape: tuple[int, int, int, int]) -> int | None:
    """The traced peak of ``network_g``'s no-grad forward, as SRModel's ``test`` runs it; None for a model that serves
    any scale (NODE-SR: its test runs a solver, which is not traced) and under autocast (a float32 trace would overstate
    it)."""
    network_opt = opt.get('network_g')
    precision = (opt.get('acceleration') or {}).get('precision', 'fp32')
    if not isinstance(network_opt, dict) or serves_any_scale(opt) or precision != 'fp32':
        return None
    arch = ARCH_REGISTRY.get(network_opt['type'])
    kwargs = {name: value for name, value in network_opt.items() if name != 'type'}
    return traced_forward_peak(lambda: arch(**kwargs).eval(), input_shape)


@dataclass(frozen=True)
class ResultEstimate:
    """The largest result of a validation / test dataset and the memory it needs.

    Args:
        image: The image (``Set5/HR/baby.png``, or an LMDB and its key).
        output_hw: The result's height and width.
        memory: The estimate in bytes per memory (:func:`~oisr_basicsr.memory.check_result_fits`).
    """

    image: str
    output_hw: tuple[int, int]
    memory: dict[torch.device, int]


def check_results_fit(opt: dict, phase: str, dataset: dict, sizes: dict[str, dict]) -> ResultEstimate | None:
    """Refuse a validation / test dataset whose largest result cannot fit in the memory of the run's device.

    Args:
        opt: The options.
        phase: The dataset's entry name.
        dataset: The entry.
        sizes: Its image sizes, as :func:`~oisr_basicsr.options.dataset_files.check_dataset_images` reads them.

    Returns:
        The estimate of that result, or None where the dataset's sizes do not tell it.
    """
    largest = largest_result(dataset, sizes, opt.get('scale'))
    if largest is None:
        return None
    root, name, input_hw, output_hw = largest
    network_opt = opt.get('network_g') if isinstance(opt.get('network_g'), dict) else None
    # A matlab_y benchmark gives one-channel images; a channel-agnostic network (None) returns what it is given.
    in_channels = (1 if dataset.get('protocol') == 'matlab_y'
                   else (network_opt and network_channels(network_opt, INPUT_CHANNEL_KEYS)) or 3)
    out_channels = (network_opt and network_channels(network_opt, OUTPUT_CHANNEL_KEYS)) or in_channels
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    image = (f'{dataset[root]} key {name}' if backend == 'lmdb' else image_file(Path(dataset[root]), name))
    scale = dataset.get('test_scale') if dataset.get('type') == 'ContinuousScalePairedDataset' else opt['scale']
    memory = check_result_fits(f'datasets.{phase}: {image}', scale, output_hw, out_channels, run_device(opt),
                               _traced_test_peak(opt, (1, in_channels, *input_hw)),
                               'test on smaller images or on a device with more memory')
    return ResultEstimate(str(image), output_hw, memory)
