"""Every shipped option file, mutated (a key dropped or misspelt, a value of the wrong type or out of range), goes
through the real start-up check of the train and test entry points: it either starts, or stops with exit status 2
and one line ``error: <dotted.key>: ...``; never a traceback, and never a start for a file known to be invalid."""

import contextlib
import io
import re

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT, run_arguments
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oisr_basicsr.data.preparation import make_lmdb
from oisr_basicsr.options import read_option_file, report_user_errors
from oisr_basicsr.startup import parse_and_validate_options

OPTION_FILES = sorted(path.name for path in (REPO_ROOT / 'options').glob('*.yml'))
MUTATIONS_PER_FILE = 12
LARGEST_BATCH = 16
KINDS = ('drop', 'misspell', 'wrong_type', 'out_of_range')
# Keys that no negative value fits, wherever they appear in the shipped files.
NOT_NEGATIVE = {'scale', 'num_gpu', 'manual_seed', 'gt_size', 'num_worker_per_gpu', 'batch_size_per_gpu',
                'dataset_enlarge_ratio', 'test_scale', 'num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale',
                'num_layer', 'num_steps', 'lr', 'eps', 'weight_decay', 'gamma', 'total_iter', 'ema_decay', 'val_freq',
                'print_freq', 'save_checkpoint_freq', 'port', 'crop_border', 'modcrop'}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """The folders and LMDBs the shipped files name: one image in each test folder, and in each training LMDB as
    many as the largest batch of a recipe (the batch must fit the training set)."""
    root = tmp_path_factory.mktemp('mutations')
    for folder, side in (('Set5/HR', 24), ('Set14/HR', 24), ('B100/HR', 24), ('Urban100/HR', 24),
                         ('DIV2K/DIV2K_valid_HR', 24), ('DIV2K/DIV2K_valid_LR_bicubic/X2', 12)):
        (root / 'datasets' / folder).mkdir(parents=True)
        cv2.imwrite(str(root / 'datasets' / folder / '0801.png'), np.full((side, side, 3), 128, np.uint8))
    for name, side in (('HR', 480), ('LR_bicubic_X2', 240), ('LR_bicubic_X3', 160), ('LR_bicubic_X4', 120)):
        images = root / 'images' / name
        images.mkdir(parents=True)
        for index in range(1, LARGEST_BATCH + 1):
            cv2.imwrite(str(images / f'0001_s{index:03d}.png'), np.full((side, side, 3), 128, np.uint8))
        make_lmdb(images, root / 'datasets' / 'DIV2K' / f'DIV2K_train_{name}_sub.lmdb')
    return root


def _leaves(block: object, prefix: tuple = ()) -> list[tuple]:
    """Paths of every key of a nested mapping (a block and the keys inside it)."""
    paths = []
    if isinstance(block, dict):
        for key, value in block.items():
            paths.append(prefix + (key, ))
            paths.extend(_leaves(value, prefix + (key, )))
    return paths


def _parent(opt: dict, path: tuple) -> dict:
    for key in path[:-1]:
        opt = opt[key]
    return opt


def _misspelt(key: str, rng: np.random.Generator) -> str:
    """``key`` with two letters swapped or one doubled: never a valid key of the same block."""
    if len(key) > 2:
        i = int(rng.integers(0, len(key) - 1))
        if key[i] != key[i + 1]:
            return key[:i] + key[i + 1] + key[i] + key[i + 2:] + 'x'
    return key + key[-1] + 'x'


def _mutate(opt: dict, kind: str, path: tuple, rng: np.random.Generator) -> tuple[tuple, bool]:
    """Apply the mutation; return the dotted location it names and whether the file is surely invalid now."""
    parent, key = _parent(opt, path), path[-1]
    value = parent[key]
    if kind == 'drop':
        del parent[key]
        return path, False  # valid when the key is optional
    if kind == 'misspell':
        new_key = _misspelt(str(key), rng)
        parent[new_key] = parent.pop(key)
        # A dataset entry's or a metric's name is the user's choice; elsewhere an unknown key is refused.
        return path[:-1] + (new_key, ), path[:-1] not in (('datasets', ), ('val', 'metrics'))
    if kind == 'wrong_type':
        if isinstance(value, bool):
            parent[key] = 'false'  # a quoted boolean is a string: surely refused
            return path, True
        if isinstance(value, int | float):
            parent[key] = 'abc'
            return path, False
        parent[key] = [1, 2] if isinstance(value, str) else 7
        return path, False
    if isinstance(value, bool) or not isinstance(value, int | float):
        parent[key] = -3
        return path, False
    parent[key] = -abs(value) - 1
    return path, key in NOT_NEGATIVE


def _start(option_file, is_train: bool) -> tuple[int, str]:
    """Run the entry points' start-up check on ``option_file``; the exit status and what went to stderr."""
    stderr = io.StringIO()
    # The run lock of a valid start is released at once, so that the next mutation of the same file can start.
    with contextlib.ExitStack() as hold:
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), report_user_errors():
                parse_and_validate_options(str(option_file.parent), is_train, run_arguments('-opt', str(option_file)),
                                           hold=hold)
            return 0, stderr.getvalue()
        except SystemExit as exit_:
            return exit_.code, stderr.getvalue()


def _shipped(name: str) -> dict:
    """A shipped file as plain dicts; the trained checkpoints that test files name are absent here, so a test file
    gets ``pretrain_network_g: ~`` (BasicSR then tests the initial weights; the checkpoint checks have own tests)."""
    opt = _as_dicts(read_option_file(REPO_ROOT / 'options' / name))
    if name.startswith('test_'):
        opt['path']['pretrain_network_g'] = None
    return opt


@pytest.mark.parametrize('name', OPTION_FILES)
def test_shipped_file_starts(name, data_root, monkeypatch):
    monkeypatch.chdir(data_root)
    option_file = data_root / name
    option_file.write_text(yaml.safe_dump(_shipped(name), sort_keys=False))
    code, err = _start(option_file, name.startswith('train_'))
    assert code == 0, err


@pytest.mark.parametrize('name', OPTION_FILES)
def test_mutated_file_starts_or_names_the_key(name, data_root, monkeypatch):
    monkeypatch.chdir(data_root)
    original = _shipped(name)
    paths = _leaves(original)
    is_train = name.startswith('train_')

    @settings(max_examples=MUTATIONS_PER_FILE, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(KINDS), index=st.integers(0, len(paths) - 1), seed=st.integers(0, 2**16))
    def check(kind, index, seed):
        runs.append(kind)
        opt = _as_dicts(original)
        location, surely_invalid = _mutate(opt, kind, paths[index], np.random.default_rng(seed))
        option_file = data_root / f'mutated_{name}'
        option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
        code, err = _start(option_file, is_train)
        assert 'Traceback' not in err
        dotted = '.'.join(map(str, location))
        if code == 0:
            assert not surely_invalid, f'{dotted} ({kind}) was accepted'
            return
        lines = [line for line in err.splitlines() if not line.startswith('note: ')]
        assert code == 2 and len(lines) == 1 and lines[0].startswith('error: '), err
        if surely_invalid:
            assert f'error: {dotted}' in lines[0], (dotted, lines[0])
        else:
            assert re.match(r'error: [\w.]+[:( ]', lines[0]), lines[0]

    runs: list[str] = []
    check()
    assert len(runs) >= MUTATIONS_PER_FILE  # 46 files: at least 552 mutations per run


def _as_dicts(block: object) -> object:
    if isinstance(block, dict):
        return {key: _as_dicts(value) for key, value in block.items()}
    if isinstance(block, list):
        return [_as_dicts(value) for value in block]
    return block
