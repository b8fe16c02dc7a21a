"""The package's layout: its import graph (read with ``ast``, nothing imported) has no cycle and points one way,
and every import of the package names a module that exists in it."""

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'oisr_basicsr'
# Folders whose modules must not import these others: the networks, the datasets and the option checks sit below
# the models (data flows option file -> checked options -> dataset -> model -> network); reading and checking an
# option file needs neither BasicSR's shims and safeguards, nor the start of a run (its device, memory estimate and
# lock).
FORBIDDEN = {'archs': ('models', ), 'data': ('models', ),
             'options': ('models', 'compat', 'safeguards', 'startup', 'memory', 'run_lock', 'inference', 'tools',
                         'train', 'test')}


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__.py``)."""
    modules = {}
    for path in sorted(package_dir.rglob('*.py')):
        parts = list(path.relative_to(package_dir.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """The package's modules (or names in them) that ``module`` imports anywhere, in functions too."""
    is_package = path.name == '__init__.py'
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
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
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + '.')}


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from a import b`` counts as a, and a.b when b is a module)."""
    modules = module_files(package_dir)
    graph = {}
    for module, path in modules.items():
        names = imported_names(module, path)
        unresolved = {name for name in names if name not in modules and name.rpartition('.')[0] not in modules}
        assert not unresolved, f'{path} imports {sorted(unresolved)}, which are not modules of the package'
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


@pytest.fixture(scope='module')
def graph() -> dict[str, set[str]]:
    return import_graph(REPO_ROOT / PACKAGE)


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set(), 'd': {'a', 'c'}}) is None


def planted_package(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A package of ``modules`` (file path below the package -> source) under ``tmp_path``."""
    package = tmp_path / PACKAGE
    for name, source in modules.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)
    return package


def test_imports_resolve_relative_names(tmp_path):
    package = planted_package(tmp_path, {'__init__.py': 'from . import options\n', 'models.py': '',
                                         'options/__init__.py': 'from .reading import x\n',
                                         'options/reading.py': 'def f():\n    from ..models import y\n'})
    assert import_graph(package) == {PACKAGE: {f'{PACKAGE}.options'},
                                     f'{PACKAGE}.models': set(),
                                     f'{PACKAGE}.options': {f'{PACKAGE}.options.reading'},
                                     f'{PACKAGE}.options.reading': {f'{PACKAGE}.models'}}


def test_the_import_graph_has_no_cycle(graph):
    assert find_cycle(graph) is None, f'import cycle: {" -> ".join(find_cycle(graph))}'


def forbidden_imports(graph: dict[str, set[str]], folder: str) -> list[str]:
    """``module imports [targets]`` for every import of ``folder``'s modules that :data:`FORBIDDEN` forbids."""
    prefix = f'{PACKAGE}.{folder}'
    found = []
    for module, targets in sorted(graph.items()):
        if module == prefix or module.startswith(prefix + '.'):
            for forbidden in FORBIDDEN[folder]:
                bad = sorted(t for t in targets if t == f'{PACKAGE}.{forbidden}' or
                             t.startswith(f'{PACKAGE}.{forbidden}.'))
                if bad:
                    found.append(f'{module} imports {bad}')
    return found


@pytest.mark.parametrize('folder', sorted(FORBIDDEN))
def test_lower_layers_do_not_import_the_layers_above(graph, folder):
    assert forbidden_imports(graph, folder) == []


def test_a_planted_upward_import_of_the_options_is_found(tmp_path):
    package = planted_package(tmp_path, {'__init__.py': '', 'compat.py': '', 'options/__init__.py': '',
                                         'options/files.py': 'from ..compat import load_auto_resume_state\n'})
    assert forbidden_imports(import_graph(package), 'options') == [
        f"{PACKAGE}.options.files imports ['{PACKAGE}.compat']"]
