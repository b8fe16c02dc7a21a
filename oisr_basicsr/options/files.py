"""Checks of the files and folders an option file names, run at start instead of failing hours into a run.

Checkpoints are readable and fit ``network_g`` (the first mismatching parameter is named with both shapes),
LMDBs open and hold every key their ``meta_info.txt`` lists, no two datasets read in one process share an LMDB
(py-lmdb opens an environment once per process), and the folders BasicSR writes to are writable.
"""

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lmdb
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from ..checkpoints.io import SAFETENSORS_SUFFIX
from ..checkpoints.weights import load_weights
from ..errors import CheckpointError, OptionError, UserError
from ..images import IMAGE_SUFFIXES
from ..safeguards.resume import load_auto_resume_state
from .lmdb_files import open_checked_lmdb, read_meta_info


def check_option_files(opt: dict) -> None:
    """Raise :class:`~oisr_basicsr.options.OptionError` naming the key and file for the first file of ``opt``
    that cannot serve the run.

    Args:
        opt: Options as BasicSR's ``parse_options`` returns them, already checked against the schema.
    """
    path_opt = opt.get('path') or {}
    trusted = bool(path_opt.get('trust_checkpoints', False))
    for key in ('pretrain_network_g', 'pretrain_network_d', 'resume_state'):
        if path_opt.get(key) is not None:
            _check_checkpoint_file(f'path.{key}', Path(path_opt[key]))
    network_g = opt.get('network_g')
    if isinstance(network_g, dict):
        weights = _weights_of_the_run(opt)
        if weights is not None:
            check_weights_fit(weights[0], weights[1], network_g, path_opt.get('param_key_g') or 'params',
                              path_opt.get('strict_load_g', True), trusted)
    for phase, dataset in opt.get('datasets', {}).items():
        if dataset.get('meta_info_file') is not None and not Path(dataset['meta_info_file']).is_file():
            raise OptionError(f'datasets.{phase}.meta_info_file: {dataset["meta_info_file"]} is not a file.')
        backend = (dataset.get('io_backend') or {}).get('type')
        if backend == 'lmdb':
            for root in ('dataroot_gt', 'dataroot_lq'):
                if dataset.get(root) is not None:
                    _check_lmdb_keys(f'datasets.{phase}.{root}', Path(dataset[root]))
        elif dataset.get('type') == 'PairedImageDataset' and dataset.get('meta_info_file') is None:
            _check_folder_pairs(f'datasets.{phase}', dataset)
    _check_lmdb_sharing(opt.get('datasets', {}))
    _check_writable(opt)


def _weights_of_the_run(opt: dict) -> tuple[str, Path] | None:
    """What names the file ``network_g``'s weights come from, and the file: the resumed state's
    ``models/net_g_<iter>.pth`` or ``.safetensors`` (where BasicSR's ``check_resume`` and
    :func:`~oisr_basicsr.safeguards.resume.find_resumed_networks` point), else ``pretrain_network_g``.

    With ``--auto_resume`` the state is the one :func:`~oisr_basicsr.safeguards.resume.load_resume_state` will pick, and
    ``path.resume_state`` is ignored as it ignores it; no state yet is a fresh start.
    """
    path_opt = opt.get('path') or {}
    if opt.get('auto_resume') and path_opt.get('training_states') is not None:
        state = _auto_resume_state(opt)
        if state is not None:
            key = f'--auto_resume (training state {state})'
            weights = _resumed_weights(state)
            if weights is None:
                raise OptionError(f'{key}: {state.parent.parent / "models"} has no net_g_{state.stem}.pth or '
                                  f'net_g_{state.stem}{SAFETENSORS_SUFFIX}, the network that state was saved with.')
            return key, weights
    elif path_opt.get('resume_state') is not None:
        weights = _resumed_weights(Path(path_opt['resume_state']))
        if weights is not None:
            return 'path.resume_state', weights
    if path_opt.get('pretrain_network_g') is not None:
        return 'path.pretrain_network_g', Path(path_opt['pretrain_network_g'])
    return None


def _auto_resume_state(opt: dict) -> Path | None:
    """The training state ``--auto_resume`` will resume from. Newer states that do not load are skipped without a
    word here: :func:`~oisr_basicsr.safeguards.resume.load_resume_state` warns about them when the run resumes."""
    try:
        path, _ = load_auto_resume_state(opt, warn=lambda message: None)
    except UserError as error:  # an unsafe or non-finite state is refused, not skipped
        raise OptionError(f'--auto_resume: {error}') from None
    return None if path is None else Path(path)


def _resumed_weights(state: Path) -> Path | None:
    models = state.parent.parent / 'models'
    return next((weights for suffix in ('.pth', SAFETENSORS_SUFFIX)
                 if (weights := models / f'net_g_{state.stem}{suffix}').is_file()), None)


ZIP_MAGIC = b'PK\x03\x04'
"""How torch's checkpoint format (a zip archive) starts."""


def _check_checkpoint_file(key: str, path: Path) -> None:
    """``path`` is a file, readable, and not cut short (torch's zip format ends with its central directory)."""
    if not path.exists():
        raise OptionError(f'{key}: {path} does not exist.')
    if not path.is_file():
        raise OptionError(f'{key}: {path} is not a file.')
    try:
        with path.open('rb') as file:
            magic = file.read(4)
    except OSError as error:
        raise OptionError(f'{key}: {path} cannot be read ({error.strerror}).') from None
    if magic != ZIP_MAGIC:
        return  # another format (a legacy torch file, safetensors): its loader names what is wrong
    try:
        zipfile.ZipFile(path).close()
    except zipfile.BadZipFile:
        raise OptionError(f'{key}: {path} is truncated (its zip directory is missing); save it again or use an '
                          'earlier one.') from None


def check_weights_fit(key: str, path: Path, network_opt: dict, param_key: str, strict: bool, trusted: bool) -> None:
    """Raise naming the first parameter of ``network_opt``'s network that the checkpoint lacks or has in another
    shape (both shapes given). Nothing is allocated: the network is built on the meta device.
    """
    kwargs = {name: value for name, value in network_opt.items() if name != 'type'}
    with torch.device('meta'):
        net = ARCH_REGISTRY.get(network_opt['type'])(**kwargs)
    try:
        # Weights that are not finite or not floating point are named here, before the logger and the datasets,
        # by the reader the model loads them with.
        weights = load_weights(path, param_key, trusted=trusted, network=net)
    except CheckpointError as error:
        raise OptionError(f'{key}: {error}') from None
    for name, tensor in net.state_dict().items():
        if name not in weights:
            if strict:
                raise OptionError(f'{key}: {path} does not fit network_g ({network_opt["type"]}): it has no '
                                  f'parameter {name} (shape {tuple(tensor.shape)} in the network).')
            continue
        if weights[name].shape != tensor.shape:
            found = tuple(weights[name].shape)
            raise OptionError(f'{key}: {path} does not fit network_g ({network_opt["type"]}): parameter {name} has '
                              f'shape {found} in the checkpoint and {tuple(tensor.shape)} in the network.')


def _check_folder_pairs(key: str, dataset: dict) -> None:
    """BasicSR pairs every file of the GT folder with ``filename_tmpl.format(stem) + suffix`` in the LQ folder and
    asserts that both folders hold as many files; name the first file that breaks this."""
    gt_folder, lq_folder = Path(dataset['dataroot_gt']), Path(dataset['dataroot_lq'])
    gt_files = sorted(path.name for path in gt_folder.iterdir() if path.is_file())
    lq_files = {path.name for path in lq_folder.iterdir() if path.is_file()}
    for root, folder, files in (('dataroot_gt', gt_folder, gt_files), ('dataroot_lq', lq_folder, sorted(lq_files))):
        stray = next((name for name in files if Path(name).suffix.lower() not in IMAGE_SUFFIXES), None)
        if stray is not None:
            raise OptionError(f'{key}.{root}: {folder} holds {stray}, which is not an image; PairedImageDataset '
                              'reads every file of its folders.')
    template = dataset.get('filename_tmpl', '{}')
    for name in gt_files:
        lq_name = template.format(Path(name).stem) + Path(name).suffix
        if lq_name not in lq_files:
            raise OptionError(f'{key}.dataroot_lq: {lq_folder} has no {lq_name}, the LQ image of {gt_folder / name} '
                              f'(filename_tmpl: {template!r}).')
    if len(lq_files) != len(gt_files):
        extra = sorted(lq_files - {template.format(Path(name).stem) + Path(name).suffix for name in gt_files})
        raise OptionError(f'{key}.dataroot_lq: {lq_folder} holds {extra[0]}, which no GT image of {gt_folder} '
                          'pairs with.')


def _check_lmdb_keys(key: str, path: Path) -> None:
    """The LMDB opens, is not truncated, and holds every key of its ``meta_info.txt`` (checked by the caller to
    exist)."""
    if not (path / 'meta_info.txt').is_file():
        return  # named by the dataset checks, which run after these
    keys = read_meta_info(key, path)
    env = open_checked_lmdb(key, path)
    try:
        with env.begin(write=False) as txn:
            missing = next((name for name in keys if txn.get(name.encode('ascii')) is None), None)
    except lmdb.Error as error:
        raise OptionError(f'{key}: LMDB {path} is corrupt ({error}); make the LMDB again.') from None
    finally:
        env.close()
    if missing is not None:
        raise OptionError(f'{key}: LMDB {path} has no entry {missing!r}, which its meta_info.txt lists.')


def _main_process_lmdbs(datasets: dict) -> Iterator[tuple[str, Path]]:
    for phase, dataset in datasets.items():
        if (dataset.get('io_backend') or {}).get('type') != 'lmdb':
            continue
        # Validation and test sets are read in the main process, training sets too with no workers.
        if str(phase).startswith('train') and (dataset.get('num_worker_per_gpu') or 0) > 0:
            continue
        for root in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(root) is not None:
                yield f'datasets.{phase}.{root}', Path(dataset[root]).resolve()


def _check_lmdb_sharing(datasets: dict) -> None:
    seen: dict[Path, str] = {}
    for key, path in _main_process_lmdbs(datasets):
        if path in seen and seen[path].rsplit('.', 1)[0] != key.rsplit('.', 1)[0]:
            raise OptionError(f'{key}: LMDB {path} is also read by {seen[path]} in the same process, and LMDB opens '
                              'an environment once per process; give the training set num_worker_per_gpu >= 1, or '
                              'validate on a copy or on an image folder.')
        seen.setdefault(path, key)


def _run_folders(opt: dict) -> Iterator[tuple[str, Path]]:
    """The folders a run makes, by the key that places them: ``experiments/<name>`` or ``results/<name>``, and for a
    training run that logs to tensorboard, ``tb_logger/<name>`` beside ``experiments/`` (where BasicSR makes it)."""
    path_opt = opt.get('path') or {}
    for key in ('experiments_root', 'results_root'):
        if path_opt.get(key) is not None:
            yield f'path.{key}', Path(path_opt[key])
    logger = opt.get('logger') or {}
    if path_opt.get('experiments_root') is not None and logger.get('use_tb_logger') and 'debug' not in opt['name']:
        yield 'logger.use_tb_logger', Path(path_opt['experiments_root']).parents[1] / 'tb_logger' / opt['name']


def _check_writable(opt: dict) -> None:
    for key, folder in _run_folders(opt):
        existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise OptionError(f'{key}: {folder} cannot be created: {existing} is not a writable folder.')
