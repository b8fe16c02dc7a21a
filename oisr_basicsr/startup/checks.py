"""Every start-up check of a run's options, in one call that creates nothing (no folder, log or lock)."""

from ..options import OptionFile, check_option_files, check_option_schema
from ..options.dataset_files import check_dataset_images
from .result_memory import check_results_fit


def validate_options(opt: dict, check_files: bool = True) -> OptionFile:
    """The options of a run as one typed object, or :class:`~oisr_basicsr.errors.OptionError` naming the key of
    the first problem; nothing is created.

    Args:
        opt: Options as read from YAML or as BasicSR's ``parse_options`` returns them.
        check_files: Also check what the options name on disk and whether the results fit: folders and LMDBs
            exist and hold images, paired LMDBs share their keys, ``gt_size`` fits the smallest GT image (read
            from image headers or ``meta_info.txt``), the largest validation or test result fits in the memory
            of the run's device, and the checkpoints, LMDB entries and output folders of
            :func:`~oisr_basicsr.options.files.check_option_files`.

    Returns:
        The typed options (:func:`~oisr_basicsr.options.check_option_schema`).
    """
    checked = check_option_schema(opt)
    if check_files:
        for phase, dataset in opt['datasets'].items():
            sizes = check_dataset_images(phase, dataset)
            if not str(phase).startswith('train'):
                check_results_fit(opt, phase, dataset, sizes)
        check_option_files(opt)
    return checked
