"""The JSON Schema of option files: made from the option schema, shipped with the package, accepting every shipped
template and refusing what the run refuses (a misspelt key, a wrong type, a value out of range), with the
description docs/options.md gives every key."""

import copy
import json
import re

import jsonschema
import pytest
import yaml
from conftest import REPO_ROOT

from oisr_basicsr.options import OptionError, check_option_schema, json_schema

OPTIONS_DIR = REPO_ROOT / 'options'


@pytest.fixture(scope='module')
def validator() -> jsonschema.Draft202012Validator:
    # The schema as the package makes it; the shipped file is this one (the next test).
    schema = json_schema.option_file_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_schema_is_the_generated_one(capsys):
    assert json_schema.main(['--check']) == 0, capsys.readouterr().err
    assert json.loads(json_schema.SCHEMA_FILE.read_text(encoding='utf-8')) == json_schema.option_file_schema()


@pytest.mark.parametrize('template', sorted(path.name for path in OPTIONS_DIR.glob('*.yml')))
def test_every_shipped_template_validates(validator, template):
    opt = yaml.safe_load((OPTIONS_DIR / template).read_text())
    assert [error.message for error in validator.iter_errors(opt)] == []


def _leaves(error: jsonschema.ValidationError):
    """The innermost errors of ``error``: inside ``anyOf`` (a key or null) and a typed block's branch, they name the
    key."""
    if not error.context:
        yield error
    for inner in error.context:
        yield from _leaves(inner)


def _errors(validator, opt) -> list[str]:
    """Every innermost error's location and message."""
    return [f'{"/".join(map(str, leaf.absolute_path))}: {leaf.message}' for error in validator.iter_errors(opt)
            for leaf in _leaves(error)]


def _set(path: str, value):
    def mutate(opt: dict) -> None:
        *parents, key = path.split('.')
        for parent in parents:
            opt = opt[parent]
        opt[key] = value
    return mutate


@pytest.mark.parametrize('mutate, location, message', [
    (_set('nmae', 'x'), '', "'nmae' does not match any of the regexes: '^network_'"),
    (_set('network_g.num_blocks', 3), 'network_g',
     "Additional properties are not allowed ('num_blocks' was unexpected)"),
    (_set('datasets.train.use_hfilp', True), 'datasets/train',
     "Additional properties are not allowed ('use_hfilp' was unexpected)"),
    (_set('val.metrics.psnr.crop_bordr', 2), 'val/metrics/psnr',
     "Additional properties are not allowed ('crop_bordr' was unexpected)"),
    (_set('train.total_iter', 'many'), 'train/total_iter', "'many' is not of type 'integer'"),
    (_set('train.optim_g.lr', -1), 'train/optim_g/lr', '-1 is less than the minimum of 0'),
    (_set('network_g.num_feat', 0), 'network_g/num_feat', '0 is less than or equal to the minimum of 0'),
    (_set('datasets.train.use_rot', 'yes'), 'datasets/train/use_rot', "'yes' is not of type 'boolean'"),
    (_set('network_g.type', 'OISRR'), 'network_g/type', "'OISRR' is not one of "),
    (_set('datasets.tain', {'name': 'x', 'type': 'PairedImageDataset'}), 'datasets',
     "'tain' does not match '^(train|val|test)(_.+)?$'"),
], ids=['top-level-typo', 'network-typo', 'dataset-typo', 'metric-typo', 'integer-type', 'lr-range', 'num-feat-range',
        'boolean-type', 'unknown-architecture', 'dataset-phase'])
def test_typo_or_wrong_type_fails_as_the_run_would(validator, mutate, location, message):
    opt = yaml.safe_load((OPTIONS_DIR / 'train_OISR_LF_x2.yml').read_text())
    mutate(opt)
    assert any(error.startswith(f'{location}: {message}') for error in _errors(validator, opt)), _errors(validator, opt)
    with pytest.raises(OptionError):  # the option schema refuses it too
        check_option_schema(copy.deepcopy(opt), training=True)


def _keys(node: object, where: str = ''):
    """Every option key a schema describes, with where it is; the conditions of typed blocks (``if``) are not keys."""
    if isinstance(node, dict):
        for name, prop in node.get('properties', {}).items():
            yield f'{where}.{name}', prop
        for key, value in node.items():
            if key != 'if':
                yield from _keys(value, f'{where}/{key}')
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _keys(value, f'{where}[{index}]')


def test_every_key_has_the_description_of_the_options_page():
    schema = json_schema.option_file_schema()
    keys = dict(_keys(schema))
    assert len(keys) > 300
    assert [where for where, prop in keys.items() if not prop.get('description')] == []
    # The same words as docs/options.md's row of the key: its type, its default and its notes.
    page = (REPO_ROOT / 'docs' / 'options.md').read_text()
    row = re.search(r'^\| `pretrain_network_g` \| (.+?) \| (.+?) \| (.*?) \|$', page, re.MULTILINE)
    assert row[1] == 'string not empty or ~' and row[2] == '~'
    path = schema['$defs']['PathOptions']['properties']
    assert path['pretrain_network_g']['description'] == 'string not empty or ~; default ~.'
    assert path['trust_checkpoints']['description'] == ('boolean; default false. Load pickled checkpoints with code; '
                                                        'only for own files.')
    assert 'load pickled checkpoints with code; only for own files' in page
    assert schema['properties']['name']['description'] == ('string not empty or ~; default ~. Required by train and '
                                                           'test; a plain folder name of at most 223 bytes.')
