"""benchmarks/bench_cli_help.py on two subcommands, once each: times and imports, with this checkout as its own
baseline."""

from conftest import REPO_ROOT

from benchmarks import bench_cli_help


def test_help_times_and_imports(capsys):
    rows = bench_cli_help.main(['--runs', '1', '--subcommands', 'options', 'check', '--baseline-root',
                                str(REPO_ROOT)])
    assert [row['subcommand'] for row in rows] == ['options', 'check']
    assert all(row['heavy'] == [] and row['seconds'] > 0 and row['baseline'] > 0 for row in rows)
    table = capsys.readouterr().out.splitlines()
    assert table[1] == '| Subcommand | `--help` (s) | imports torch / BasicSR | baseline (s) | ratio |'
    assert table[3].startswith('| `options` | ') and table[3].endswith('x |')


def test_heavy_imports_are_read_from_importtime():
    assert bench_cli_help.heavy_imports(REPO_ROOT, 'options') == []
    assert 'check' in bench_cli_help.subcommands(REPO_ROOT)
