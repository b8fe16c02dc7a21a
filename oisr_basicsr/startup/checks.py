"""Every start-up check of a run's options, in one call that creates nothing (no folder, log or lock)."""

from dataclasses import dataclass, field
from pathlib import Path

from ..options import check_option_files, check_option_schema
from ..options.dataset_files import check_dataset_images, training_images
from ..options.dataset_sizes import check_batch_fits, check_images_decode
from .result_memory import ResultEstimate, check_results_fit


@dataclass(frozen=True)
class CheckedDataset:
    """What the start-up checks read of one dataset (``oisr check`` prints it).

    Args:
        type: The dataset's ``type``.
        sizes: Image sizes ``(H, W)`` by name, per root key (``dataroot_gt``, ``dataroot_lq``), from the image
            headers or ``meta_info.txt``; empty where the files are not read this way (``meta_info_file``).
        largest_result: For a validation or test dataset whose sizes are known, its largest result.
    """

    type: str
    sizes: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    largest_result: ResultEstimate | None = None


def validate_options(opt: dict, check_files: bool = True) -> dict[str, CheckedDataset]:
    """Raise :class:`~oisr_basicsr.errors.OptionError`, naming the key, for the first problem of a run's options;
    else what was read of each dataset, by phase. Nothing is created.

    Args:
        opt: Options as read from YAML or as BasicSR's ``parse_options`` returns them; checked against the option
            schema first, then as :func:`check_run_inputs` checks them.
        check_files: As for :func:`check_run_inputs`.
    """
    check_option_schema(opt)
    return check_run_inputs(opt, check_files)


def check_run_inputs(opt: dict, check_files: bool = True) -> dict[str, CheckedDataset]:
    """What the options name, checked against one another and the files: what was read of each dataset, by phase,
    or :class:`~oisr_basicsr.errors.OptionError` naming the key. Nothing is created.

    Args:
        opt: Options that the option schema has checked (:func:`~.command_line.parse_options` returns them so).
        check_files: Also check what the options name on disk and whether the results fit: folders and LMDBs
            exist and hold images, paired LMDBs share their keys, ``gt_size`` fits the smallest GT image and
            paired images are in the scale (read from image headers or ``meta_info.txt``), the training batch is no
            larger than the images each process draws per epoch, the largest validation or test result fits in the
            memory of the run's device, the validation and test images decode, and the checkpoints, LMDB entries
            and output folders of :func:`~oisr_basicsr.options.files.check_option_files`.
    """
    checked = {}
    for phase, dataset in opt['datasets'].items():
        sizes = check_dataset_images(phase, dataset, opt.get('scale')) if check_files else {}
        largest = None
        images = training_images(dataset, sizes) if check_files and phase == 'train' else None
        if images is not None:
            check_batch_fits(f'datasets.{phase}', dataset, images, opt.get('world_size') or 1)
        if not str(phase).startswith('train'):
            largest = check_results_fit(opt, phase, dataset, sizes)
            if check_files and (dataset.get('io_backend') or {}).get('type', 'disk') == 'disk':
                for root in sizes:  # the folders whose headers were read, now known to fit in memory
                    check_images_decode(f'datasets.{phase}.{root}', Path(dataset[root]))
        checked[phase] = CheckedDataset(dataset['type'], sizes, largest)
    if check_files:
        check_option_files(opt)
    return checked
