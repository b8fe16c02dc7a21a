"""The option files shipped with the package, listed or copied to edit, and their JSON Schema: the work of
``oisr options``, whose command line and help are :mod:`oisr_cli.commands.options`.

The templates are the repository's ``options/`` files (the paper's recipes and test protocols); they read data
from ``datasets/...`` relative to the folder a run starts in. A copy never overwrites an existing file.
A built package holds them as package data (``setup.py`` copies them in); a checkout, or an editable install of
one, serves its ``options/`` folder.
"""

import argparse
import difflib
import sys
from importlib import resources
from pathlib import Path

from ..errors import OptionError, UserError, error_status
from ..options.json_schema import SCHEMA_FILE, schema_text
from ..outputs import OutputRules, write_text

TEMPLATE_SUFFIX = '.yml'
# Where a checkout keeps the templates: the repository's options/, beside the oisr_basicsr package.
CHECKOUT_OPTIONS = Path(__file__).resolve().parents[2] / 'options'


def _templates(folder: resources.abc.Traversable) -> list[resources.abc.Traversable]:
    return [entry for entry in folder.iterdir() if entry.name.endswith(TEMPLATE_SUFFIX)]


def template_folder() -> resources.abc.Traversable:
    """The folder the templates are served from: the package data of a built package, else the checkout's
    ``options/`` (git stores the files there alone)."""
    packaged = resources.files('oisr_basicsr') / 'templates'
    return packaged if _templates(packaged) else CHECKOUT_OPTIONS


def template_files() -> dict[str, resources.abc.Traversable]:
    """Every template by name (the file name without ``.yml``), sorted."""
    files = _templates(template_folder())
    return {entry.name[:-len(TEMPLATE_SUFFIX)]: entry for entry in sorted(files, key=lambda entry: entry.name)}


def describe(text: str) -> str:
    """A template's one-line description: its first comment line."""
    first_line = text.splitlines()[0] if text else ''
    return first_line.removeprefix('#').strip()


def list_templates() -> list[tuple[str, str]]:
    """``(name, description)`` of every template."""
    return [(name, describe(entry.read_text(encoding='utf-8'))) for name, entry in template_files().items()]


def schema_modeline() -> str:
    """The first line of a copied template: it points an editor's YAML language server at the installed JSON Schema
    (:data:`~oisr_basicsr.options.json_schema.SCHEMA_FILE`), which then completes keys and flags unknown ones."""
    return f'# yaml-language-server: $schema={SCHEMA_FILE.as_uri()}\n'


def copy_template(name: str, destination: str | Path | None = None) -> Path:
    """Write the template ``name`` (with or without ``.yml``) to ``destination``, after :func:`schema_modeline`.

    Args:
        name: A name from :func:`list_templates`.
        destination: A file to create, or an existing folder that receives ``<name>.yml``; None: the current folder.

    Returns:
        The file written.

    Raises:
        OptionError: ``name`` is not a template (naming the closest ones), or the destination cannot be written.
        UnsafeOutputError: The destination exists (a copy never replaces a file) or is a link.
    """
    name = name.removesuffix(TEMPLATE_SUFFIX)
    templates = template_files()
    if name not in templates:
        close = difflib.get_close_matches(name, list(templates), n=3)
        hint = f'did you mean {", ".join(close)}?' if close else 'see oisr options list'
        raise OptionError(f'{name!r} is not an option template; {hint}')
    target = Path('.' if destination is None else destination)
    if target.is_dir():
        target = target / f'{name}{TEMPLATE_SUFFIX}'
    _write_new_file(target, schema_modeline() + templates[name].read_text(encoding='utf-8'))
    return target


def _write_new_file(target: Path, text: str) -> None:
    """Write ``text`` to ``target``, which must not exist yet: a copy never replaces a file.

    Raises:
        OptionError: ``target`` cannot be written.
        UnsafeOutputError: ``target`` exists or is a link.
    """
    try:
        write_text(target, text, OutputRules(replace=False))
    except UserError:
        raise
    except OSError as error:
        raise OptionError(f'cannot write {target}: {error.strerror}') from None


def run(args: argparse.Namespace) -> int:
    """List or copy templates, or give the JSON Schema (the command line of ``oisr options``:
    :mod:`oisr_cli.commands.options`); returns the exit status (2 for an unknown name or an existing destination)."""
    if args.command == 'list':
        rows = list_templates()
        width = max(len(name) for name, _ in rows)
        for name, description in rows:
            print(f'{name:<{width}}  {description}')
        return 0
    if args.command == 'schema' and args.output is None:
        print(schema_text(), end='')
        return 0
    try:
        if args.command == 'schema':
            _write_new_file(args.output, schema_text())
            target = args.output
        else:
            target = copy_template(args.name, args.destination)
    except UserError as error:
        return error_status(error)
    print(f'wrote {target}')
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.options import main  # the command line is the `oisr` command's

    sys.exit(main())
