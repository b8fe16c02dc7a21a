"""Numbers on the command line: every scale, tile, size and tolerance argument of every tool refuses NaN, infinity
and values that mean nothing (a tile of 0, a scale below 1), naming the argument, as one ``error:`` line with exit
status 2, before anything is read or written.

Issue 23 found ``--scale inf`` ending in a traceback in infer, export and plot-scales.
"""

import argparse
import subprocess
import sys

import pytest
from conftest import assert_one_line_error, tree_snapshot

from oisr_cli.argument_types import non_negative_float, non_negative_int, positive_int, scale_factor
from oisr_cli.commands import SUBCOMMANDS

COMMANDS = {command.name: command for command in SUBCOMMANDS}
# (prog, the arguments around the one under test), by subcommand
TOOLS = {
    'infer': ('oisr infer', ['-opt', 'o.yml', '-i', 'in', '-o', 'out']),
    'export': ('oisr export', ['-opt', 'o.yml', '--output', 'm.onnx']),
    'plot-scales': ('oisr plot-scales', ['-opt', 'o.yml', '--hr-dir', 'hr']),
    'compare': ('oisr compare', ['-opt', 'o.yml', '--datasets', 'Set5', '--output-dir', 'out']),
    'complexity': ('oisr complexity', ['-opt', 'o.yml']),
    'prepare-data': ('oisr prepare-data train',
                     ['train', '--input', 'hr', '--output', 'out', '--name', 'x', '--scales', '2']),
    'quickstart': ('oisr quickstart', []),
}
CASES = [
    ('infer', ['--scale', 'inf'], 'argument --scale: inf is not a finite number'),
    ('infer', ['--scale', 'nan'], 'argument --scale: nan is not a finite number'),
    ('infer', ['--scale', '0.5'], 'argument --scale: 0.5 is below 1; a scale factor enlarges'),
    ('infer', ['--scale', 'x2'], "argument --scale: 'x2' is not a number"),
    ('infer', ['--tile', 'inf'], "argument --tile: 'inf' is not an integer"),
    ('infer', ['--tile', '0'], 'argument --tile: 0 is not a positive integer'),
    ('infer', ['--tile-overlap', '-1'], 'argument --tile-overlap: -1 is negative'),
    ('export', ['--scale', 'inf'], 'argument --scale: inf is not a finite number'),
    ('export', ['--scale=-inf'], 'argument --scale: -inf is not a finite number'),
    ('export', ['--tolerance', 'nan'], 'argument --tolerance: nan is not a finite number'),
    ('export', ['--tolerance', 'inf'], 'argument --tolerance: inf is not a finite number'),
    ('export', ['--tolerance=-1e-4'], 'argument --tolerance: -1e-4 is negative'),
    ('export', ['--sample-size', '1', '8'], 'argument --sample-size: 1 is smaller than 2'),
    ('plot-scales', ['--scales', '2', 'inf'], 'argument --scales: inf is not a finite number'),
    ('plot-scales', ['--scales', 'nan'], 'argument --scales: nan is not a finite number'),
    ('plot-scales', ['--scales', '0.9'], 'argument --scales: 0.9 is below 1; a scale factor enlarges'),
    ('compare', ['--latency-size', 'inf', '10'], "argument --latency-size: 'inf' is not an integer"),
    ('compare', ['--latency-runs', '0'], 'argument --latency-runs: 0 is not a positive integer'),
    ('compare', ['--warmup', '-2'], 'argument --warmup: -2 is negative'),
    ('compare', ['--scale', '1'], 'argument --scale: 1 is not an integer >= 2'),
    ('compare', ['--scale', 'inf'], "argument --scale: 'inf' is not an integer"),
    ('complexity', ['--height', '0'], 'argument --height: 0 is not a positive integer'),
    ('prepare-data', ['--crop-size', '-480'], 'argument --crop-size: -480 is not a positive integer'),
    ('prepare-data', ['--num-workers', '0'], 'argument --num-workers: 0 is not a positive integer'),
    ('prepare-data', ['--scales', '2', 'nan'], "argument --scales: 'nan' is not an integer"),
    ('quickstart', ['--iters', '0'], 'argument --iters: 0 is not a positive integer'),
]


@pytest.mark.parametrize('tool,argument,message', CASES, ids=[f'{t}{"_".join(a)}' for t, a, _ in CASES])
def test_numbers_that_mean_nothing_are_refused_naming_the_argument(tmp_path, monkeypatch, capsys, tool, argument,
                                                                   message):
    monkeypatch.chdir(tmp_path)
    prog, base = TOOLS[tool]
    with pytest.raises(SystemExit) as exit_:
        COMMANDS[tool].main([*base, *argument])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f'error: {message} (see {prog} --help)\n'
    assert tree_snapshot(tmp_path) == {}  # nothing read, nothing written


def test_scale_inf_through_the_oisr_command(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'infer', '-opt', 'o.yml', '-i', 'in', '-o', 'out',
                             '--scale', 'inf'], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, 'argument --scale: inf is not a finite number')
    assert tree_snapshot(tmp_path) == {}


def test_every_tool_reports_command_line_errors_on_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        COMMANDS['options'].main(['copy'])
    assert exit_.value.code == 2
    assert_one_line_error(capsys.readouterr().err, 'the following arguments are required: name',
                          '(see oisr options copy --help)')


def test_the_types_return_what_the_tools_compute_with():
    assert scale_factor('4') == 4 and isinstance(scale_factor('4'), int)  # the 4 of a network's options
    assert scale_factor('2.5') == 2.5 and scale_factor('1') == 1
    assert positive_int('3') == 3 and non_negative_int('0') == 0 and non_negative_float('0') == 0.0
    for helper, text in ((scale_factor, '1e999'), (non_negative_float, '-0.1'), (positive_int, '1.5')):
        with pytest.raises(argparse.ArgumentTypeError):
            helper(text)
