"""The benchmarks package: every benchmark imports as ``benchmarks.<name>``, answers ``--help``, and is listed in
benchmarks/README.md with the one command form docs/benchmarks.md uses."""

import importlib
import re

import pytest
from conftest import REPO_ROOT

HELPERS = ('__init__', 'benchmarking')
BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / 'benchmarks').glob('*.py') if path.stem not in HELPERS)


@pytest.mark.parametrize('name', BENCHMARKS)
def test_every_benchmark_imports_as_a_module_and_answers_help(name, capsys):
    module = importlib.import_module(f'benchmarks.{name}')
    with pytest.raises(SystemExit) as exit_info:
        module.main(['--help'])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ')
    assert f'python -m benchmarks.{name}' in module.__doc__


def test_readme_lists_every_benchmark_and_the_docs_run_them_as_modules():
    readme = (REPO_ROOT / 'benchmarks' / 'README.md').read_text()
    docs = (REPO_ROOT / 'docs' / 'benchmarks.md').read_text()
    assert sorted(re.findall(r'^### `(\w+)`$', readme, flags=re.MULTILINE)) == BENCHMARKS
    assert sorted(set(re.findall(r'python -m benchmarks\.(\w+)', docs))) == BENCHMARKS
    for text in (readme, docs):
        assert not re.search(r'python (scripts|benchmarks)/\w+\.py', text)
    # Every section the README points at exists in docs/benchmarks.md (GitHub's heading anchors).
    anchors = {re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')
               for heading in re.findall(r'^#+ (.+)$', docs, flags=re.MULTILINE)}
    links = re.findall(r'\(\.\./docs/benchmarks\.md#([^)]+)\)', readme)
    assert len(links) == len(BENCHMARKS)
    assert set(links) <= anchors
