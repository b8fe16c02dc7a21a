"""Every README promise has a test that fails when the promise breaks.

``tests/guarantees.yml`` lists claim -> test -> a deliberate break of the package. Here each break is applied to a
copy of the repository and its test is run there (by ``tests/break_runner.py``, two at a time): it must fail.
``docs/guarantees.md`` is the table rendered from the same file; ``python tests/test_guarantees.py`` rewrites it.

Adding a guarantee: append a row to ``tests/guarantees.yml`` (claim, test node id, the break's name, file,
original text, replacement), check by hand that the test fails with the break, and rewrite the doc.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
GUARANTEES = REPO_ROOT / 'tests' / 'guarantees.yml'
DOC = REPO_ROOT / 'docs' / 'guarantees.md'
FIELDS = ('claim', 'test', 'break', 'file', 'original', 'replacement')
# What a copy needs to run the tests: the package, the tests and what they read (scripts, option files, the docs:
# the layer table of docs/development.md, for one).
COPIED = ('oisr_basicsr', 'oisr_cli', 'benchmarks', 'tests', 'scripts', 'options', 'docs', 'pyproject.toml',
          'setup.py', 'MANIFEST.in', 'README.md')
# All breaks together (tests/break_runner.py runs two at a time, each for at most 10 minutes).
RUNNER_TIMEOUT = 3600

DOC_HEADER = '''# What is guaranteed, and the test that fails without it

Each row is a promise of the README, the test that backs it, and a deliberate break of the package (file,
original text, replacement) that makes that test fail. `tests/test_guarantees.py` applies every break to a copy
of the repository, runs the test there and checks that it fails; it also checks that this page is the table
rendered from `tests/guarantees.yml`, where the rows are defined (regenerate with
`python tests/test_guarantees.py`).

| Claim | Test | Break | File | Original | Replacement |
|---|---|---|---|---|---|
'''


DOC_FOOTER = '''
Not in the table:

- Speed and memory figures (the train-step ratios against EDSR, NODE-SR's peak memory with `checkpoint` and
  `backprop`) are benchmark records with their commands in `docs/benchmarks.md`, not assertions.
- The quick start's PSNR table is checked by `tests/test_quickstart.py` (bicubic to 0.01 dB, OISR-LF above
  it), which trains for minutes: too long to rerun for a break.
- Grayscale, RGBA and 16-bit training images are read by BasicSR's own reader; `tests/test_bad_inputs.py`
  pins that behaviour, but there is no code of this package to break.
'''


def load_guarantees() -> list[dict]:
    rows = yaml.safe_load(GUARANTEES.read_text())
    for row in rows:
        if tuple(row) != FIELDS:
            raise ValueError(f'{GUARANTEES}: the row {row.get("break")!r} must have the keys {", ".join(FIELDS)}')
    return rows


def _code(text: str) -> str:
    # One table cell: code with its line breaks shown, pipes and backticks escaped for Markdown.
    escaped = text.strip('\n').replace('\n', '⏎').replace('|', '\\|')
    return f'`` {escaped} ``' if '`' in escaped else f'`{escaped}`'


def render_doc(rows: list[dict]) -> str:
    lines = [f'| {row["claim"]} | `{row["test"].replace("|", chr(92) + "|")}` | {row["break"]} | `{row["file"]}` '
             f'| {_code(row["original"])} | {_code(row["replacement"])} |' for row in rows]
    return DOC_HEADER + '\n'.join(lines) + '\n' + DOC_FOOTER


def test_doc_is_the_rendered_table():
    assert DOC.read_text() == render_doc(load_guarantees()), 'run python tests/test_guarantees.py'


def test_every_original_text_occurs_exactly_once():
    for row in load_guarantees():
        count = (REPO_ROOT / row['file']).read_text().count(row['original'])
        assert count == 1, f'{row["break"]}: the original text occurs {count} times in {row["file"]}'


def _copy_repository(destination: Path) -> Path:
    copy = destination / 'repo'
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns('__pycache__', '*.egg-info'))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    # Tests find the shared benchmark images next to the repository.
    shared = REPO_ROOT.parent / 'shared'
    if shared.is_dir():
        (destination / 'shared').symlink_to(shared, target_is_directory=True)
    return copy


def _broken_copy(row: dict, workdir: Path) -> Path:
    """A fresh copy of the repository with ``row``'s break applied."""
    copy = _copy_repository(workdir)
    target = copy / row['file']
    target.write_text(target.read_text().replace(row['original'], row['replacement']))
    return copy


@pytest.mark.slow
def test_every_break_makes_its_test_fail(tmp_path):
    rows = load_guarantees()
    # OISR_BREAKS=text checks only the rows whose file, break or test contains that text (while editing them).
    only = os.environ.get('OISR_BREAKS')
    if only:
        rows = [row for row in rows if any(only in row[field] for field in ('file', 'break', 'test'))]
    jobs = [{'copy': str(_broken_copy(row, tmp_path / f'break{i}')), 'test': row['test'],
             'log': str(tmp_path / f'break{i}.log')} for i, row in enumerate(rows)]
    (tmp_path / 'jobs.json').write_text(json.dumps(jobs))
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    env.pop('PYTHONPATH', None)
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tests' / 'break_runner.py'), str(tmp_path / 'jobs.json')],
                            capture_output=True, text=True, env=env, timeout=RUNNER_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = json.loads(result.stdout.splitlines()[-1])
    # 1: the test ran and failed. 0 is a pass; 2, 4 and 5 are a broken collection, a usage error or no test at
    # all; None a timeout.
    survived = [f'{row["break"]} ({row["test"]}): exit status {status}\n{Path(job["log"]).read_text()[-1500:]}'
                for row, job, status in zip(rows, jobs, statuses, strict=True) if status != 1]
    assert not survived, 'tests that did not fail on broken code:\n' + '\n'.join(survived)


if __name__ == '__main__':
    DOC.write_text(render_doc(load_guarantees()))
    print(f'wrote {DOC}')
