"""Option values nobody had tried: a key written twice, a name no file system or person can handle, integers that
YAML reads as floats or strings, absurd resources, contradictory scales and non-finite numbers. Each is one
``error:`` line naming the key, exit status 2, before anything is written; valid neighbours still start."""

import copy
import functools
import operator
import os
import unicodedata
from pathlib import Path

import pytest
import yaml
from conftest import refused_by_command, run_arguments, run_entry_point, tiny_train_options
from hypothesis import given, settings
from hypothesis import strategies as st

from oisr_basicsr.options import (
    NAME_MAX_BYTES,
    SEED_MAX,
    OptionError,
    check_option_schema,
    options_as_read,
    read_option_file,
)
from oisr_basicsr.options.schema.datasets import MAX_BATCH_SIZE, worker_bound
from oisr_basicsr.startup import parse_options
from oisr_cli.commands import train


def _nodesr_train_set(tmp_path) -> dict:
    return {'name': 'div2k', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(tmp_path),
            'io_backend': {'type': 'disk'}, 'gt_size': 32, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}


def _set(path: str, value: object):
    def mutate(opt: dict) -> None:
        *parents, last = path.split('.')
        for parent in parents:
            opt = opt[parent]
        opt[last] = value
    return mutate


def _start(tmp_path, monkeypatch, capsys, text: str) -> str:
    """Run ``oisr train`` in-process on an option file holding ``text``, which it must refuse
    (:func:`conftest.refused_by_command`: exit status 2, one ``error:`` line, nothing written, the option file and
    the data unchanged); the line."""
    option_file = tmp_path / 'o.yml'
    option_file.write_text(text, encoding='utf-8')
    return refused_by_command(train.main, ['-opt', str(option_file)], tmp_path, monkeypatch, capsys)


# ----------------------------------------------------------------------------------------------------------------
# A key written twice


@pytest.mark.parametrize(('text', 'message'), [
    ('name: a\nscale: 2\nname: b\n', "line 3: key 'name' appears again (first at line 1)"),
    ('train:\n  total_iter: 4\n  ema_decay: 0\n  total_iter: 8\n', "line 4: key 'total_iter' appears again (first "
                                                                   'at line 2)'),
    ('network_g:\n  type: OISR\n  num_feat: 8\nscale: 2\nnetwork_g:\n  type: EDSR\n',
     "line 5: key 'network_g' appears again (first at line 1)"),
    ('datasets:\n  val:\n    io_backend:\n      type: disk\n      type: lmdb\n',
     "line 5: key 'type' appears again (first at line 4)"),
    ('a: {x: 1, y: 2, x: 3}\n', "line 1: key 'x' appears again (first at line 1)"),
])
def test_a_key_written_twice_is_refused_with_both_lines(tmp_path, monkeypatch, capsys, text, message):
    path = tmp_path / 'twice.yml'
    path.write_text(text)
    with pytest.raises(OptionError) as error:
        read_option_file(path)
    assert str(error.value) == f'{path}, {message}'
    assert _start(tmp_path, monkeypatch, capsys, text) == f'{tmp_path / "o.yml"}, {message}'


def test_keys_a_merge_brings_in_may_be_overridden(tmp_path):
    path = tmp_path / 'merge.yml'
    path.write_text('base: &base {num_feat: 8, num_block: 1}\nnetwork_g:\n  <<: *base\n  num_feat: 16\n')
    assert read_option_file(path)['network_g'] == {'num_feat': 16, 'num_block': 1}


def test_a_second_network_block_stops_the_training_command(tmp_path, paired_folders, monkeypatch, capsys):
    text = yaml.safe_dump(tiny_train_options(*paired_folders, 'twice', total_iter=2), sort_keys=False)
    text += 'network_g:\n  type: EDSR\n  num_in_ch: 3\n  num_out_ch: 3\n'
    line = text.splitlines().index('network_g:') + 1
    assert _start(tmp_path, monkeypatch, capsys, text) == (f"{tmp_path / 'o.yml'}, line {len(text.splitlines()) - 3}: "
                                                           f"key 'network_g' appears again (first at line {line})")


# ----------------------------------------------------------------------------------------------------------------
# name


@pytest.mark.parametrize(('name', 'message'), [
    pytest.param('a' * (NAME_MAX_BYTES + 1), f'name: {NAME_MAX_BYTES + 1} bytes long; allowed: at most '
                                             f'{NAME_MAX_BYTES} bytes', id='too-long'),
    pytest.param('é' * (NAME_MAX_BYTES // 2 + 1), f'name: {2 * (NAME_MAX_BYTES // 2 + 1)} bytes long; allowed: at '
                                                  'most', id='too-long-in-utf8'),
    pytest.param('run\u202egnp.exe', 'holds U+202E (RIGHT-TO-LEFT OVERRIDE), a format character', id='bidi'),
    pytest.param('run\u200b1', 'holds U+200B (ZERO WIDTH SPACE), a format character', id='zero-width'),
    pytest.param('run\x1b[31m', 'holds U+001B (no name), a control character', id='escape'),
    pytest.param('run\u2028x', 'holds U+2028 (LINE SEPARATOR), a line separator', id='line-separator'),
    pytest.param('run\ue000', 'holds U+E000 (no name), a private-use character', id='private-use'),
    pytest.param('run\U000e0001', 'holds U+E0001 (LANGUAGE TAG), a format character', id='tag'),
    pytest.param('run\U0010fffe', 'holds U+10FFFE (no name), an unassigned code point', id='unassigned'),
])
def test_names_no_file_system_or_person_can_handle_are_refused(tmp_path, paired_folders, monkeypatch, capsys, name,
                                                               message):
    opt = tiny_train_options(*paired_folders, name, total_iter=2)
    with pytest.raises(OptionError) as error:
        check_option_schema(opt, training=True)
    assert str(error.value).startswith('name: ') and message in str(error.value)
    assert '\n' not in str(error.value)
    assert _start(tmp_path, monkeypatch, capsys, yaml.safe_dump(opt)) == str(error.value)


def test_the_longest_name_and_any_script_are_accepted(tmp_path, paired_folders, monkeypatch):
    for name in ('a' * NAME_MAX_BYTES, 'Ünïcode_名前-x2.v1'):
        option_file = tmp_path / 'o.yml'
        option_file.write_text(yaml.safe_dump(tiny_train_options(*paired_folders, name, total_iter=2)))
        opt, _ = parse_options(str(tmp_path), True, run_arguments('-opt', str(option_file), '--debug'))
        # The longest file BasicSR makes from it, the debug run's log, still fits in a file name.
        log_name = f'train_{opt["name"]}_20260101_120000.log'
        assert opt['name'] == f'debug_{name}' and len(log_name.encode('utf-8')) <= 255
        assert os.path.basename(opt['path']['experiments_root']) == opt['name']


def test_an_invisible_name_stops_the_training_command(tmp_path, paired_folders, monkeypatch, capsys):
    opt = tiny_train_options(*paired_folders, 'exp\u202e2x', total_iter=2)
    line = _start(tmp_path, monkeypatch, capsys, yaml.safe_dump(opt, allow_unicode=True))
    # The message quotes the name escaped: the override does not reverse the terminal's line.
    assert line.startswith("name: 'exp\\u202e2x' is not a plain folder name: it holds U+202E")
    assert '\u202e' not in line


# ----------------------------------------------------------------------------------------------------------------
# Integers YAML reads as floats or strings; ranges


def test_integral_numbers_reach_basicsr_as_integers(tmp_path, paired_folders):
    text = yaml.safe_dump(tiny_train_options(*paired_folders, 'numbers', total_iter=2), sort_keys=False)
    text = (text.replace('total_iter: 2', 'total_iter: 1e1')  # a string under YAML 1.1
            .replace('batch_size_per_gpu: 2', 'batch_size_per_gpu: !!float 2')
            .replace('lr: 0.001', 'lr: 1e-3'))
    option_file = tmp_path / 'o.yml'
    option_file.write_text(text)
    assert read_option_file(option_file)['train']['total_iter'] == '1e1'
    opt, _ = parse_options(str(tmp_path), True, run_arguments('-opt', str(option_file)))
    assert opt['train']['total_iter'] == 10 and type(opt['train']['total_iter']) is int
    assert opt['datasets']['train']['batch_size_per_gpu'] == 2
    assert type(opt['datasets']['train']['batch_size_per_gpu']) is int
    assert opt['train']['optim_g']['lr'] == 1e-3
    assert opt['network_g'] == {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf',
                                'g_variant': 'v2'}  # what needed no reading stays as written


def test_the_largest_seed_seeds_every_rank(tmp_path, paired_folders):
    option_file = tmp_path / 'o.yml'
    options = tiny_train_options(*paired_folders, 'seed', total_iter=2)
    options['manual_seed'] = SEED_MAX
    option_file.write_text(yaml.safe_dump(options))
    opt, _ = parse_options(str(tmp_path), True, run_arguments('-opt', str(option_file)))
    assert opt['manual_seed'] == SEED_MAX


@pytest.mark.parametrize(('mutate', 'message'), [
    pytest.param(_set('train.total_iter', '1e1.5'), "train.total_iter: not an integer; got '1e1.5'; allowed: an "
                                                    'integer', id='integer-not-a-number'),
    pytest.param(_set('train.total_iter', 10.5), 'train.total_iter: not an integer; got 10.5; allowed: an integer',
                 id='integer-fraction'),
    pytest.param(_set('train.total_iter', '2.55e1'), "train.total_iter: not an integer; got '2.55e1'; allowed: an "
                                                    'integer', id='integer-string-fraction'),
    pytest.param(_set('manual_seed', SEED_MAX + 1), f'manual_seed: out of range; got {SEED_MAX + 1}; allowed: <= '
                                                    f'{SEED_MAX}', id='seed'),
    pytest.param(_set('datasets.train.batch_size_per_gpu', '1e10'),
                 f"datasets.train.batch_size_per_gpu: out of range; got '1e10'; allowed: <= {MAX_BATCH_SIZE}",
                 id='batch'),
    pytest.param(_set('datasets.train.num_worker_per_gpu', 10000),
                 f'datasets.train.num_worker_per_gpu: out of range; got 10000; allowed: <= {worker_bound()} (4 per CPU '
                 'of this machine, at least 8)', id='workers'),
    pytest.param(_set('train.optim_g.lr', float('nan')), 'train.optim_g.lr: not a finite number; got nan; allowed: a '
                                                         'number', id='nan'),
    pytest.param(_set('train.ema_decay', float('-inf')), 'train.ema_decay: not a finite number; got -inf; allowed: a '
                                                         'number', id='inf'),
    pytest.param(_set('train.optim_g.lr', 'inf'), "train.optim_g.lr: not a finite number; got 'inf'; allowed: a "
                                                  'number', id='inf-string'),
    # a key whose type says nothing about numbers: the network's rgb_mean, a tuple of any values
    pytest.param(_set('network_g', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                                    'upscale': 2, 'rgb_mean': [0.4, float('nan'), 0.4]}),
                 'network_g.rgb_mean.1: not a finite number; got nan; allowed: a number', id='nan-untyped'),
])
def test_numbers_out_of_reason_name_the_key(tmp_path, paired_folders, monkeypatch, capsys, mutate, message):
    opt = tiny_train_options(*paired_folders, 'numbers', total_iter=2)
    mutate(opt)
    with pytest.raises(OptionError) as error:
        check_option_schema(opt, training=True)
    assert str(error.value) == message
    assert _start(tmp_path, monkeypatch, capsys, yaml.safe_dump(opt)) == message


def test_workers_within_the_bound_start(tmp_path, paired_folders):
    opt = tiny_train_options(*paired_folders, 'workers', total_iter=2)
    opt['datasets']['train']['num_worker_per_gpu'] = worker_bound()
    check_option_schema(opt, training=True)


@pytest.mark.slow
def test_ten_thousand_workers_fork_nothing(tmp_path):
    # Data folders that do not exist: should the workers pass, the file checks stop the run before BasicSR could
    # fork them, and the message differs.
    opt = tiny_train_options(tmp_path / 'no_hr', tmp_path / 'no_lr', 'forks', total_iter=2)
    opt['datasets']['train']['num_worker_per_gpu'] = 10000
    result = run_entry_point('oisr_basicsr.train', opt, tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f'error: datasets.train.num_worker_per_gpu: out of range; got 10000; allowed: <= '
                             f'{worker_bound()} (4 per CPU of this machine, at least 8)\n')
    assert not (tmp_path / 'experiments').exists()


# ----------------------------------------------------------------------------------------------------------------
# NODE-SR training scales


@pytest.mark.parametrize(('change', 'message'), [
    pytest.param({'scale_range': [4.0, 2.0]}, 'datasets.train.scale_range: the low end 4 is above the high end 2; '
                                              'allowed: [low, high] with 1 < low <= high', id='min-above-max'),
    pytest.param({'scale_range': [2.001, 2.009]}, 'datasets.train.scale_range: [2.001, 2.009] holds no multiple of '
                                                  '0.01, the scales it draws', id='no-scale-in-range'),
    pytest.param({'scale_range': [1.5, 2.0], 'scales': [2.0]}, 'datasets.train.scale_range: given together with '
                                                               'scales; give one of them', id='both'),
    pytest.param({'scales': [2.0, float('inf')]}, 'datasets.train.scales.1: not a finite number; got inf; allowed: a '
                                                  'number', id='inf'),
])
def test_contradictory_training_scales_are_refused(tmp_path, paired_folders, monkeypatch, capsys, change, message):
    opt = tiny_train_options(*paired_folders, 'scales', total_iter=2)
    opt['model_type'] = 'NODESRModel'
    del opt['scale'], opt['network_g']['upscale']
    opt['network_g']['type'] = 'NODEOISR'
    opt['datasets'] = {'train': {**_nodesr_train_set(paired_folders[0]), **change}}
    del opt['val']
    with pytest.raises(OptionError) as error:
        check_option_schema(opt, training=True)
    assert str(error.value) == message
    assert _start(tmp_path, monkeypatch, capsys, yaml.safe_dump(opt)) == message


# ----------------------------------------------------------------------------------------------------------------
# Network integers without type hints


@pytest.mark.parametrize(('network', 'key', 'written', 'read'), [
    pytest.param('EDSR', 'num_in_ch', '3e0', 3, id='no-hint-no-default'),  # EDSR(num_in_ch, ...)
    pytest.param('RCAN', 'squeeze_factor', '8e0', 8, id='integer-default'),  # RCAN(..., squeeze_factor=16)
    pytest.param('EDSR', 'res_scale', '1e-1', 0.1, id='fraction-of-an-integer-default'),  # EDSR(..., res_scale=1)
])
def test_network_integers_read_as_floats_reach_the_network_as_integers(tmp_path, paired_folders, network, key,
                                                                       written, read):
    opt = tiny_train_options(*paired_folders, 'network', total_iter=2)
    opt['network_g'] = {'type': network, 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 1,
                        'upscale': 2, key: written}
    if network == 'RCAN':
        opt['network_g']['num_group'] = 1
    option_file = tmp_path / 'o.yml'
    option_file.write_text(yaml.safe_dump(opt))
    parsed, _ = parse_options(str(tmp_path), True, run_arguments('-opt', str(option_file)))
    assert parsed['network_g'][key] == read and type(parsed['network_g'][key]) is type(read)


def test_a_fraction_for_a_network_integer_names_the_key(tmp_path, paired_folders, monkeypatch, capsys):
    opt = tiny_train_options(*paired_folders, 'network', total_iter=2)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3.5, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                        'upscale': 2}
    assert _start(tmp_path, monkeypatch, capsys, yaml.safe_dump(opt)) == \
        'network_g.num_in_ch: not an integer; got 3.5; allowed: an integer'


# ----------------------------------------------------------------------------------------------------------------
# The gate against random option files (Hypothesis)

KEYS = st.from_regex(r'[a-z][a-z0-9_]{0,5}', fullmatch=True).filter(
    lambda key: key not in {'yes', 'no', 'on', 'off', 'true', 'false', 'null', 'y', 'n'})  # YAML 1.1's words
MAPPINGS = st.recursive(st.integers(0, 99), lambda children: st.dictionaries(KEYS, children, min_size=1, max_size=4),
                        max_leaves=12).filter(lambda tree: isinstance(tree, dict))


def _yaml_lines(mapping: dict, depth: int = 0) -> list[tuple[int, tuple, str]]:
    """Block-style YAML of ``mapping``, line by line: (depth, the path of the mapping the line is in, the line)."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines.append((depth, (key, ), f'{"  " * depth}{key}:'))
            lines += [(d, (key, ) + path, line) for d, path, line in _yaml_lines(value, depth + 1)]
        else:
            lines.append((depth, (key, ), f'{"  " * depth}{key}: {value}'))
    return lines


@settings(max_examples=150, deadline=None)
@given(MAPPINGS, st.data())
def test_a_key_written_twice_at_any_depth_is_named_with_both_lines(mapping, data):
    from oisr_basicsr.options.reading import load_yaml_data

    lines = _yaml_lines(mapping)
    assert load_yaml_data('\n'.join(line for _, _, line in lines), 'o.yml') == mapping
    # Write one line's key again right after the last line of the mapping that holds it.
    first = data.draw(st.integers(0, len(lines) - 1))
    depth, path, line = lines[first]
    parent = path[:-1]
    end = max(index for index, (d, p, _) in enumerate(lines) if p[:len(parent)] == parent and d >= depth)
    twice = [text for _, _, text in lines[:end + 1]] + [f'{"  " * depth}{path[-1]}: 0'] + \
        [text for _, _, text in lines[end + 1:]]
    with pytest.raises(OptionError) as error:
        load_yaml_data('\n'.join(twice), 'o.yml')
    assert str(error.value) == f"o.yml, line {end + 2}: key '{path[-1]}' appears again (first at line {first + 1})"


def _plain_folder_name(name: str) -> bool:
    """An independent model of the ``name`` rule: what a file system and a reader can take."""
    return (name not in ('', '.', '..') and '/' not in name and len(name.encode('utf-8')) <= NAME_MAX_BYTES
            and not any(unicodedata.category(char) in {'Cc', 'Cf', 'Zl', 'Zp', 'Co', 'Cs', 'Cn'} for char in name))


NAMES = st.one_of(
    st.text(max_size=12),
    st.text(st.sampled_from('ab_-.é名\u202e\u200b\u2028\x1b\x00\t/\ue000\U000e0001'), max_size=12),
    st.integers(NAME_MAX_BYTES - 2, NAME_MAX_BYTES + 2).map(lambda size: 'n' * size),
    st.integers(NAME_MAX_BYTES // 2 - 1, NAME_MAX_BYTES // 2 + 1).map(lambda size: 'é' * size))


@settings(max_examples=200, deadline=None)
@given(NAMES)
def test_any_name_is_accepted_exactly_when_it_is_a_plain_folder_name(name):
    opt = tiny_train_options(Path('/data/HR'), Path('/data/LR'), name, total_iter=2)
    if _plain_folder_name(name):
        assert check_option_schema(opt, training=True).name == name
    else:
        with pytest.raises(OptionError) as error:
            check_option_schema(opt, training=True)
        assert str(error.value).startswith('name: ') and '\n' not in str(error.value)


def _integer_keys(opt: object, path: tuple = ()) -> list[tuple]:
    """The dotted paths of every integer in ``opt``."""
    if isinstance(opt, dict):
        return [found for key, value in opt.items() for found in _integer_keys(value, path + (key, ))]
    if isinstance(opt, list):
        return [found for index, value in enumerate(opt) for found in _integer_keys(value, path + (index, ))]
    return [path] if type(opt) is int else []


def _every_integer_key() -> dict:
    """The tiny run with an EDSR network (whose channels have neither a type hint nor a default), the data
    loader's, the GAN schedule's and dist_params' integers added: every integer key a training option file of an
    SRModel may hold."""
    opt = tiny_train_options(Path('/data/HR'), Path('/data/LR'), 'integers', total_iter=2)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                        'upscale': 2}
    opt['datasets']['train']['num_prefetch_queue'] = 1
    opt['train'].update(net_d_iters=1, net_d_init_iters=0)
    opt['dist_params'] = {'backend': 'gloo', 'port': 29500}
    return opt


INTEGER_OPTIONS = _every_integer_key()


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_integer_keys(INTEGER_OPTIONS)), st.sampled_from(['float', 'exponent', 'fraction']),
       st.floats(0.01, 0.99))
def test_every_integer_key_reads_an_integral_float_and_names_itself_for_a_fraction(path, form, fraction):
    opt = copy.deepcopy(INTEGER_OPTIONS)
    *parents, last = path
    block = functools.reduce(operator.getitem, parents, opt)
    value = block[last]
    block[last] = {'float': float(value), 'exponent': f'{value}e0', 'fraction': value + fraction}[form]
    key = '.'.join(map(str, path))
    if form == 'fraction':
        with pytest.raises(OptionError) as error:
            check_option_schema(opt, training=True)
        assert str(error.value).startswith(f'{key}: ') and '\n' not in str(error.value)
    else:
        read = options_as_read(opt, check_option_schema(opt, training=True))
        assert functools.reduce(operator.getitem, path, read) == value
        assert type(functools.reduce(operator.getitem, path, read)) is int
