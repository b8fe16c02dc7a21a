"""The option files shipped with the package: list them, copy one to edit, or print their JSON Schema.

    oisr options list                                   # every template with its one-line description
    oisr options copy train_OISR_RK3_x4                 # writes ./train_OISR_RK3_x4.yml
    oisr options copy train_OISR_RK3_x4 my_run.yml      # or a file name (or a folder) of your choice
    oisr options schema --output oisr-options.schema.json

The templates are the repository's ``options/`` files (the paper's recipes and test protocols); they read data
from ``datasets/...`` relative to the folder a run starts in. A copy never overwrites an existing file.

A copy starts with a ``# yaml-language-server: $schema=...`` line naming the JSON Schema installed with the
package: an editor with a YAML language server (VS Code's YAML extension, Neovim's yamlls, ...) then completes
keys, shows what each takes and flags unknown keys and wrong types as you type. ``oisr options schema`` prints
the same schema, made from the option schema the runs check files with.
"""

import argparse
from pathlib import Path

from ..subcommand import Subcommand


class Options(Subcommand):
    """``oisr options``: :func:`oisr_basicsr.tools.option_templates.run`."""

    name = 'options'
    summary = 'list the option templates shipped with the package, copy one to edit, or print their JSON Schema'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        commands = parser.add_subparsers(dest='command', required=True)
        commands.add_parser('list', help='every template with its one-line description')
        copy = commands.add_parser('copy', help='write one template to a file to edit')
        copy.add_argument('name', help='template name, e.g. train_OISR_RK3_x4 (see oisr options list)')
        copy.add_argument('destination', nargs='?', help='file or existing folder (default: ./<name>.yml)')
        schema = commands.add_parser('schema', help="the JSON Schema of option files, for an editor's YAML support")
        schema.add_argument('--output', type=Path, help='file to write it to (default: print it)')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.option_templates import run

        return run(args)


COMMAND = Options()
main = COMMAND.main
