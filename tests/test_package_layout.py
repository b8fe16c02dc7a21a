"""The layout of ``oisr_basicsr`` and ``oisr_cli``: their import graph (read with ``ast``, nothing imported) has no
cycle, every import of either package names a module that exists in it, and every import points down the layers
of ``docs/development.md``: a module imports its own layer and the layers below it, never one above, and every
module has its layer."""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('oisr_basicsr', 'oisr_cli')
# The layer order is written once, as the table under this heading; the test reads it from there.
LAYERS_DOC = REPO_ROOT / 'docs' / 'development.md'
LAYERS_HEADING = '## Layers'
MAIN_BLOCK_TEST = "__name__ == '__main__'"


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: its number (1 is the lowest), its name, and the modules and subpackages in it."""

    number: int
    name: str
    members: tuple[str, ...]

    def __str__(self) -> str:
        return f'layer {self.number}, {self.name}'


def expected_may_import(number: int) -> str:
    """What the table's "May import" cell says for layer ``number``: every lower layer."""
    return 'none' if number == 1 else '1' if number == 2 else f'1-{number - 1}'


def read_layers(doc: Path = LAYERS_DOC) -> list[Layer]:
    """The layers of the table under :data:`LAYERS_HEADING` in ``doc``, lowest first.

    Args:
        doc: The Markdown file: a row is ``| <number> <name> | `module`, ... | <may import> |``.
    """
    section = doc.read_text(encoding='utf-8').split(f'\n{LAYERS_HEADING}\n', 1)[1].split('\n## ', 1)[0]
    layers = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        row = re.fullmatch(r'(\d+) (.+)', cells[0]) if len(cells) == 3 else None
        if row is None:
            continue
        number, name = int(row.group(1)), row.group(2)
        assert number == len(layers) + 1, f'{doc.name}: layer {number} follows layer {len(layers)}'
        assert cells[2] == expected_may_import(number), \
            f'{doc.name}: layer {number} may import {expected_may_import(number)!r}, the table says {cells[2]!r}'
        layers.append(Layer(number, name, tuple(re.findall(r'`([\w.]+)`', cells[1]))))
    assert layers, f'{doc.name} has no layer table under {LAYERS_HEADING!r}'
    return layers


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the packages under ``root`` by dotted name (a package by its own name, for its
    ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob('*.py')):
            parts = list(path.relative_to(root).with_suffix('').parts)
            if parts[-1] == '__init__':
                parts.pop()
            modules['.'.join(parts)] = path
    return modules


def statements_run_on_import(tree: ast.Module) -> list[ast.stmt]:
    """The module's statements but a top-level ``if __name__ == '__main__':`` block: that block runs only when the
    module is the program (``python -m``), which stands above every layer."""
    return [node for node in tree.body
            if not (isinstance(node, ast.If) and ast.unparse(node.test) == MAIN_BLOCK_TEST)]


def imported_names(module: str, path: Path) -> set[str]:
    """The packages' modules (or names in them) that ``module`` imports anywhere, in functions too."""
    is_package = path.name == '__init__.py'
    names = set()
    for statement in statements_run_on_import(ast.parse(path.read_text(encoding='utf-8'), filename=str(path))):
        for node in ast.walk(statement):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split('.')[:len(module.split('.')) - node.level + (1 if is_package else 0)]
                    source = '.'.join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                names.add(source)
                names.update(f'{source}.{alias.name}' for alias in node.names)
    return {name for name in names if name.split('.')[0] in PACKAGES}


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the packages' modules it imports (``from a import b`` counts as a, and a.b when b is a module), for
    the packages under ``root``."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        names = imported_names(module, path)
        unresolved = {name for name in names if name not in modules and name.rpartition('.')[0] not in modules}
        assert not unresolved, f'{path} imports {sorted(unresolved)}, which are not modules of the packages'
        graph[module] = {name for name in names if name in modules and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first node repeated at the end), or None."""
    state = {}  # node -> 'open' while on the depth-first path, 'done' after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 'open'
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 'open':
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def placed_in(module: str) -> str:
    """The table entry that places ``module``: the package itself, or its top-level module or subpackage."""
    return '.'.join(module.split('.')[:2])


def layer_of(layers: list[Layer]) -> dict[str, Layer]:
    """Each table entry's layer."""
    return {member: layer for layer in layers for member in layer.members}


def unplaced_modules(graph: dict[str, set[str]], layers: list[Layer]) -> list[str]:
    """A line for each module that no layer places, and for each table entry that names no module."""
    placed = layer_of(layers)
    problems = [f'{module} is in no layer: add {placed_in(module)} to a row of the table in {LAYERS_DOC.name}'
                for module in sorted(graph) if placed_in(module) not in placed]
    entries = {placed_in(module) for module in graph}
    problems += [f'{member} ({placed[member]}) is no module of the packages' for member in sorted(placed)
                 if member not in entries]
    problems += [f'{member} is in more than one layer' for layer in layers for member in layer.members
                 if placed[member] is not layer]
    return problems


def upward_imports(graph: dict[str, set[str]], layers: list[Layer]) -> list[str]:
    """``module (its layer) imports target (its layer)`` for every import of a layer above the importing module's."""
    placed = layer_of(layers)
    found = []
    for module, targets in sorted(graph.items()):
        own = placed.get(placed_in(module))
        for target in sorted(targets):
            theirs = placed.get(placed_in(target))
            if own is not None and theirs is not None and theirs.number > own.number:
                found.append(f'{module} ({own}) imports {target} ({theirs})')
    return found


@pytest.fixture(scope='module')
def graph() -> dict[str, set[str]]:
    return import_graph(REPO_ROOT)


@pytest.fixture(scope='module')
def layers() -> list[Layer]:
    return read_layers()


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set(), 'd': {'a', 'c'}}) is None


def planted_packages(tmp_path: Path, modules: dict[str, str]) -> Path:
    """Packages of ``modules`` (file path below ``tmp_path`` -> source) under ``tmp_path``, which it returns."""
    for name, source in modules.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    return tmp_path


def test_imports_resolve_relative_names(tmp_path):
    root = planted_packages(tmp_path, {
        'oisr_basicsr/__init__.py': 'from . import options\n', 'oisr_basicsr/models.py': '',
        'oisr_basicsr/options/__init__.py': 'from .reading import x\n',
        'oisr_basicsr/options/reading.py': 'def f():\n    from ..models import y\n',
        'oisr_basicsr/tools.py': "if __name__ == '__main__':\n    from oisr_cli.main import main\n",
        'oisr_cli/__init__.py': '', 'oisr_cli/main.py': 'def main():\n    from oisr_basicsr.tools import run\n'})
    assert import_graph(root) == {'oisr_basicsr': {'oisr_basicsr.options'},
                                  'oisr_basicsr.models': set(),
                                  'oisr_basicsr.options': {'oisr_basicsr.options.reading'},
                                  'oisr_basicsr.options.reading': {'oisr_basicsr.models'},
                                  'oisr_basicsr.tools': set(),  # the main block is the program's, above all
                                  'oisr_cli': set(),
                                  'oisr_cli.main': {'oisr_basicsr.tools'}}


def test_the_import_graph_has_no_cycle(graph):
    assert find_cycle(graph) is None, f'import cycle: {" -> ".join(find_cycle(graph))}'


def test_every_module_is_in_one_layer(graph, layers):
    assert unplaced_modules(graph, layers) == []


def test_every_import_points_down_the_layers(graph, layers):
    assert upward_imports(graph, layers) == []


def test_a_planted_upward_import_is_found_naming_both_layers(tmp_path, layers):
    root = planted_packages(tmp_path, {
        'oisr_basicsr/__init__.py': '', 'oisr_basicsr/compat.py': '', 'oisr_basicsr/options/__init__.py': '',
        'oisr_basicsr/options/files.py': 'from ..compat import load_auto_resume_state\n'})
    assert upward_imports(import_graph(root), layers) == [
        'oisr_basicsr.options.files (layer 5, options) imports oisr_basicsr.compat (layer 6, the run around a model)']


def test_a_module_in_no_layer_is_found(tmp_path, layers):
    root = planted_packages(tmp_path, {'oisr_basicsr/__init__.py': '', 'oisr_basicsr/errors.py': '',
                                       'oisr_basicsr/helpers/__init__.py': '', 'oisr_basicsr/helpers/text.py': ''})
    problems = unplaced_modules(import_graph(root), layers)
    assert problems[:2] == [
        'oisr_basicsr.helpers is in no layer: add oisr_basicsr.helpers to a row of the table in development.md',
        'oisr_basicsr.helpers.text is in no layer: add oisr_basicsr.helpers to a row of the table in development.md']
    # The rest: every table entry that the planted packages lack.
    assert 'oisr_basicsr.options (layer 5, options) is no module of the packages' in problems[2:]
    assert not any('oisr_basicsr.errors ' in problem for problem in problems)


def test_the_table_is_checked_as_written(tmp_path):
    doc = tmp_path / 'development.md'
    doc.write_text(f'# x\n\n{LAYERS_HEADING}\n\n| Layer | Modules | May import |\n| --- | --- | --- |\n'
                   '| 1 base | `a.errors` | none |\n| 2 gates | `a.images` | 1-1 |\n\n## Next\n')
    with pytest.raises(AssertionError, match="layer 2 may import '1', the table says '1-1'"):
        read_layers(doc)
