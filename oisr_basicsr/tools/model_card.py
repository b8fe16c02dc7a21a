"""A model card: the facts about an exported or converted model that the package knows, as JSON beside it.

The field names follow OpenModelDB's model entries where one exists (``architecture``, ``scale``,
``inputChannels``, ``trainingIterations``, ``trainingBatchSize``, ``trainingHRSize``, ``dataset``,
``resources`` with the file's ``sha256``); the rest are named after what they hold. Training facts come
from the experiment folder BasicSR writes (``experiments/<name>/``): the option file it copies there and
its ``train_*.log``, whose last ``Validation <dataset>`` block gives the last validation metrics per
dataset. Nothing in the card is guessed: a fact the package cannot know is ``null`` (the license is a
placeholder to fill in).
"""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..complexity import MACS_OUTPUT_SIZE, network_complexity
from ..inference.loading import load_option_file
from ..outputs import DEFAULT_RULES, OutputRules, write_text

CARD_SUFFIX = '.card.json'
# The files of a BasicSR experiment folder that the training facts come from.
OPTION_FILES, TRAINING_LOGS = '*.yml', 'train_*.log'
LICENSE_PLACEHOLDER = 'FILL IN: the license of the weights (e.g. CC-BY-4.0), which the package cannot know'

_ITERATION = re.compile(r'iter:\s*([\d,]+)')
_VALIDATION = re.compile(r'Validation (\S+)')
_METRIC = re.compile(r'#\s*([\w.-]+):\s*(-?[\d.]+(?:e-?\d+)?|nan|inf)')


def model_card_path(model_path: str | os.PathLike) -> Path:
    """Where the card of ``model_path`` goes: ``<file name>.card.json`` in the same folder."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def last_validation(log_text: str) -> dict[str, dict[str, float]]:
    """The last validation metrics per dataset in a BasicSR training log, with the iteration they were taken at.

    BasicSR logs ``Validation <dataset>`` followed by one ``# <metric>: <value>`` line per metric; the
    iteration is the last ``iter:`` logged before the block.
    """
    results: dict[str, dict[str, float]] = {}
    iteration, dataset = None, None
    for line in log_text.splitlines():
        validation = _VALIDATION.search(line)
        if validation:
            dataset = validation.group(1)
            results[dataset] = {'iteration': iteration} if iteration is not None else {}
            continue
        metric = _METRIC.search(line) if dataset is not None else None
        if metric:
            results[dataset][metric.group(1)] = float(metric.group(2))
            continue
        dataset = None
        found = _ITERATION.search(line)
        if found:
            iteration = int(found.group(1).replace(',', ''))
    return results


def training_facts(experiment_dir: str | os.PathLike) -> dict[str, Any]:
    """Training iterations, data and last validation metrics from a BasicSR experiment folder.

    Args:
        experiment_dir: ``experiments/<name>``: the option file BasicSR copied there (the newest ``.yml``)
            and its ``train_*.log`` files (read in name order, i.e. in time order).
    """
    experiment_dir = Path(experiment_dir)
    option_files = sorted(experiment_dir.glob(OPTION_FILES), key=lambda path: path.stat().st_mtime)
    if not option_files:
        raise FileNotFoundError(f'{experiment_dir} holds no option file (*.yml) of a training run')
    opt = load_option_file(option_files[-1])
    train_opt = opt.get('train') or {}
    train_data = (opt.get('datasets') or {}).get('train') or {}
    log_text = '\n'.join(path.read_text(encoding='utf-8', errors='replace')
                         for path in sorted(experiment_dir.glob(TRAINING_LOGS)))
    return {
        'name': opt.get('name'),
        'trainingIterations': train_opt.get('total_iter'),
        'trainingBatchSize': train_data.get('batch_size_per_gpu'),
        'trainingHRSize': train_data.get('gt_size'),
        'dataset': train_data.get('name'),
        'trainingData': {key: train_data[key] for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file')
                         if key in train_data},
        'trainingOptionFile': option_files[-1].name,
        'validation': last_validation(log_text),
    }


def colour_mode(network_opt: dict) -> str:
    """``RGB`` for three input channels, ``grayscale`` for one (e.g. a Y-channel model)."""
    channels = network_opt.get('num_in_ch', 3)
    return {3: 'RGB', 1: 'grayscale'}.get(channels, f'{channels} channels')


def build_model_card(network_opt: dict, scale: float, model_path: str | os.PathLike,
                     experiment_dir: str | os.PathLike | None = None,
                     complexity: dict[str, int] | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card of the model file ``model_path``.

    Args:
        network_opt: ``network_g`` of the option file (``type`` and the constructor's arguments).
        scale: The model's upscaling factor.
        model_path: The exported or converted file (``.onnx``, ``.pth``, ``.safetensors``).
        experiment_dir: The BasicSR experiment folder of the training run, or ``None`` when there was none
            (training facts are then ``null``).
        complexity: ``params`` and ``macs`` for a 1280x720 output; by default those of one forward pass of
            ``network_g`` (:func:`~oisr_basicsr.complexity.network_complexity`).
        extra: More fields (e.g. the ONNX opset and precision), added as they are.
    """
    model_path = Path(model_path)
    network_opt = dict(network_opt)
    complexity = complexity or network_complexity(network_opt, scale, MACS_OUTPUT_SIZE)
    card: dict[str, Any] = {
        'name': model_path.stem,
        'architecture': network_opt['type'],
        'architectureOptions': {key: value for key, value in network_opt.items() if key != 'type'},
        'scale': scale,
        'inputChannels': network_opt.get('num_in_ch', 3),
        'outputChannels': network_opt.get('num_out_ch', 3),
        'colorMode': colour_mode(network_opt),
        'parameters': complexity['params'],
        'macs720p': complexity['macs'],
        'license': LICENSE_PLACEHOLDER,
        'resources': [{'type': model_path.suffix.lstrip('.'), 'file': model_path.name,
                       'size': model_path.stat().st_size, 'sha256': sha256_of(model_path)}],
        'trainingIterations': None,
        'trainingBatchSize': None,
        'trainingHRSize': None,
        'dataset': None,
        'trainingData': None,
        'validation': None,
    }
    if experiment_dir is not None:
        facts = training_facts(experiment_dir)
        facts.pop('name')
        card.update(facts)
    card.update(extra or {})
    return card


def write_model_card(card: dict[str, Any], model_path: str | os.PathLike, rules: OutputRules = DEFAULT_RULES) -> Path:
    """Write ``card`` as JSON beside ``model_path`` (atomically, under the run's ``rules``); returns the card's
    path."""
    path = model_card_path(model_path)
    write_text(path, json.dumps(card, indent=2, sort_keys=False) + '\n', rules)
    return path


def experiment_dir_of(weights: str | os.PathLike | None) -> Path | None:
    """The experiment folder of a checkpoint BasicSR saved (``experiments/<name>/models/net_g_*.pth``), if any."""
    if weights is None:
        return None
    folder = Path(os.path.expanduser(str(weights))).resolve().parent.parent
    return folder if any(folder.glob(TRAINING_LOGS)) and any(folder.glob(OPTION_FILES)) else None


def experiment_files(experiment_dir: str | os.PathLike | None) -> list[Path]:
    """The files of an experiment folder that :func:`training_facts` reads (none for None)."""
    if experiment_dir is None:
        return []
    return [path for pattern in (OPTION_FILES, TRAINING_LOGS) for path in sorted(Path(experiment_dir).glob(pattern))]
