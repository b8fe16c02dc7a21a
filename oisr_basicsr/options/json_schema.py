"""The JSON Schema of an option file, made from the option schema (:mod:`oisr_basicsr.options.schema`), for editors.

An editor with a YAML language server (VS Code's YAML extension, Neovim's yamlls, JetBrains' IDEs) reads it to
complete keys, show what each one takes and flag unknown keys and wrong types while the file is written; the
run itself checks the file with the option schema, which this one follows. Every key carries the description
docs/options.md gives it (:func:`~oisr_basicsr.options.reference_page.key_description`).

The blocks whose ``type`` names a registered class (networks, datasets, losses, metrics, optimisers,
schedulers) are one ``if type is X then X's keys`` branch per class registered when the schema is made: the
package's and BasicSR's.

The package ships the schema as :data:`SCHEMA_FILE`, written by ``scripts/generate_option_docs.py`` and kept equal
to :func:`option_file_schema` by a test; ``oisr options schema`` prints it from the installed package.
"""

import argparse
import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
from pydantic import BaseModel
from pydantic.json_schema import PydanticJsonSchemaWarning, models_json_schema

from .reference_page import key_description, write_generated_file
from .schema import blocks, datasets, model_blocks, registered, root
from .schema.base import Block

SCHEMA_FILE = Path(__file__).with_name('option_file.schema.json')
DIALECT = 'https://json-schema.org/draft/2020-12/schema'
PHASES = '^(train|val|test)(_.+)?$'
"""``datasets.<phase>``: ``train``, ``val``, ``val_1``, ..., ``test_1``, ..."""
BOUNDS = {'gt': 'exclusiveMinimum', 'ge': 'minimum', 'lt': 'exclusiveMaximum', 'le': 'maximum'}
"""pydantic writes the bounds of a type with a validator before it (the schema's integers and numbers, which also
read YAML 1.1's ``1e-4``) under its own names; JSON Schema's are these."""


def _typed_blocks(factory: Callable[[str], type[Block]], names: Iterable[str]) -> dict[str, type[BaseModel]]:
    return {name: factory(name) for name in sorted(names)}


def _registered(registry) -> list[str]:
    return [name for name, _ in registry]


def option_file_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a whole option file, as the option schema checks it."""
    typed = {
        'network': _typed_blocks(registered.network_block, _registered(ARCH_REGISTRY)),
        'dataset': _typed_blocks(datasets.dataset_block, _registered(DATASET_REGISTRY)),
        'loss': _typed_blocks(registered.loss_block, _registered(LOSS_REGISTRY)),
        'metric': _typed_blocks(registered.metric_block, _registered(METRIC_REGISTRY)),
        'optimizer': _typed_blocks(registered.optimizer_block, registered.OPTIMIZERS),
        'scheduler': _typed_blocks(registered.scheduler_block, registered.SCHEDULER_CLASSES),
    }
    fixed = [root.OptionFile, model_blocks.ODEOptions, model_blocks.AccelerationOptions]
    models = fixed + [block for kind_blocks in typed.values() for block in kind_blocks.values()]
    with warnings.catch_warnings():
        # Defaults such as a norm layer class have no JSON form; the schema gives no default for them.
        warnings.simplefilter('ignore', PydanticJsonSchemaWarning)
        refs, top = models_json_schema([(model, 'validation') for model in models], ref_template='#/$defs/{model}')
    defs = _json_schema_bounds(top['$defs'])
    ref_of = {model: refs[(model, 'validation')]['$ref'] for model in models}
    _close_blocks(defs, [block for block in models if getattr(block, 'open_keys', False)], ref_of)

    def branches(kind: str) -> dict:
        return _typed_object(kind, {name: ref_of[block] for name, block in typed[kind].items()})

    top_level = defs.pop(ref_of[root.OptionFile].rsplit('/', 1)[-1])
    top_level['properties']['network_g'] = _nullable(branches('network'), top_level['properties']['network_g'])
    top_level['patternProperties'] = {'^network_': branches('network')}
    top_level['properties']['datasets'] = _nullable({
        'type': 'object', 'propertyNames': {'pattern': PHASES}, 'additionalProperties': branches('dataset'),
    }, top_level['properties']['datasets'])
    for key, block in (('ode', model_blocks.ODEOptions), ('acceleration', model_blocks.AccelerationOptions)):
        top_level['properties'][key] = _nullable({'$ref': ref_of[block]}, top_level['properties'][key])
    train = _definition(defs, blocks.TrainOptions)
    for loss in ('pixel_opt', 'perceptual_opt', 'gan_opt'):
        train['properties'][loss] = _nullable(branches('loss'), train['properties'][loss])
    train['properties']['scheduler'] = _nullable(branches('scheduler'), train['properties']['scheduler'])
    train['patternProperties'] = {'^optim_': branches('optimizer')}
    val = _definition(defs, blocks.ValOptions)
    val['properties']['metrics'] = _nullable({'type': 'object', 'additionalProperties': branches('metric')},
                                             val['properties']['metrics'])
    _describe_keys(top_level, defs)
    for definition in defs.values():
        _describe_keys(definition, defs)
    return {'$schema': DIALECT, **top_level, 'title': 'oisr-basicsr option file', '$defs': dict(sorted(defs.items()))}


def _json_schema_bounds(node: object) -> object:
    """``node`` with pydantic's names of bounds (:data:`BOUNDS`) replaced by JSON Schema's, at every depth."""
    if isinstance(node, list):
        return [_json_schema_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    # A key named like a bound inside 'properties' is an option's name, not a bound.
    return {(key if key not in BOUNDS or 'properties' in node and key in node['properties'] else BOUNDS[key]):
            _json_schema_bounds(value) for key, value in node.items()}


def _definition(defs: dict, block: type[BaseModel]) -> dict:
    """The definition of a block that pydantic put in ``defs`` under its own name."""
    return defs[block.__name__]


def _close_blocks(defs: dict, open_blocks: list[type[BaseModel]], ref_of: dict) -> None:
    """Refuse unknown keys in every block, as :class:`~oisr_basicsr.options.schema.base.Block` does, but in those whose
    class takes ``**kwargs``; keys of a block's ``key_patterns`` are described by its patternProperties."""
    open_names = {ref_of[block].rsplit('/', 1)[-1] for block in open_blocks}
    for name, definition in defs.items():
        if definition.get('type') == 'object' and 'properties' in definition and name not in open_names:
            definition['additionalProperties'] = False


def _nullable(value: dict, original: dict) -> dict:
    """``value`` or null, with the description and default pydantic gave the key."""
    kept = {key: original[key] for key in ('description', 'default') if key in original}
    return {'anyOf': [value, {'type': 'null'}], **kept}


def _typed_object(kind: str, refs: dict[str, str]) -> dict:
    """A mapping whose ``type`` names one of ``refs``' classes and whose keys are that class's block."""
    return {
        'type': 'object',
        'required': ['type'],
        'properties': {'type': {'enum': list(refs), 'description': f'the registered {kind}'}},
        'allOf': [{'if': {'properties': {'type': {'const': name}}, 'required': ['type']}, 'then': {'$ref': ref}}
                  for name, ref in refs.items()],
    }


def _describe_keys(definition: dict, defs: dict) -> None:
    """Give every key of ``definition`` the description docs/options.md gives it."""
    required = definition.get('required', [])
    for name, prop in definition.get('properties', {}).items():
        prop['description'] = key_description(name, prop, required, defs)


def schema_text() -> str:
    """:func:`option_file_schema` as the text of :data:`SCHEMA_FILE`."""
    return json.dumps(option_file_schema(), indent=1, sort_keys=False) + '\n'


def main(argv: list[str] | None = None) -> int:
    """Write :data:`SCHEMA_FILE`, or check it with ``--check`` (exit status 1 if it is out of date)."""
    parser = argparse.ArgumentParser(description='Write the JSON Schema of option files that the package ships.')
    parser.add_argument('--check', action='store_true', help=f'only report whether {SCHEMA_FILE.name} is up to date')
    return write_generated_file(SCHEMA_FILE, schema_text(), parser.parse_args(argv).check)
