"""The option files shipped with the package: list them, or copy one to edit.

    oisr options list                                   # every template with its one-line description
    oisr options copy train_OISR_RK3_x4                 # writes ./train_OISR_RK3_x4.yml
    oisr options copy train_OISR_RK3_x4 my_run.yml      # or a file name (or a folder) of your choice

The templates are the repository's ``options/`` files (the paper's recipes and test protocols); they read data
from ``datasets/...`` relative to the folder a run starts in. A copy never overwrites an existing file.
A built package holds them as package data (``setup.py`` copies them in); a checkout, or an editable install of
one, serves its ``options/`` folder.
"""

import argparse
import difflib
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..errors import OptionError, UserError, error_status

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


def copy_template(name: str, destination: str | Path | None = None) -> Path:
    """Write the template ``name`` (with or without ``.yml``) to ``destination``.

    Args:
        name: A name from :func:`list_templates`.
        destination: A file to create, or an existing folder that receives ``<name>.yml``; None: the current folder.

    Returns:
        The file written.

    Raises:
        OptionError: ``name`` is not a template (naming the closest ones), or the destination exists.
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
    try:
        with open(target, 'x', encoding='utf-8') as file:  # 'x': an existing file is never overwritten
            file.write(templates[name].read_text(encoding='utf-8'))
    except FileExistsError:
        raise OptionError(f'{target} exists; choose another destination or remove it first') from None
    except OSError as error:
        raise OptionError(f'cannot write {target}: {error.strerror}') from None
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='oisr options', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('list', help='every template with its one-line description')
    copy = commands.add_parser('copy', help='write one template to a file to edit')
    copy.add_argument('name', help='template name, e.g. train_OISR_RK3_x4 (see oisr options list)')
    copy.add_argument('destination', nargs='?', help='file or existing folder (default: ./<name>.yml)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """List or copy templates; returns the exit status (2 for an unknown name or an existing destination)."""
    args = build_parser().parse_args(argv)
    if args.command == 'list':
        rows = list_templates()
        width = max(len(name) for name, _ in rows)
        for name, description in rows:
            print(f'{name:<{width}}  {description}')
        return 0
    try:
        target = copy_template(args.name, args.destination)
    except UserError as error:
        return error_status(error)
    print(f'wrote {target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
