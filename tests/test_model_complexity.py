"""oisr_basicsr/tools/complexity_report.py: the paper's numbers from an option file, and clear errors for bad files."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)
from oisr_cli.commands import complexity

REPO = Path(__file__).resolve().parents[1]

RK3_X4 = """\
name: OISR_RK3_x4
scale: 4
network_g:
  type: OISR
  num_feat: 256
  num_block: 22
  upscale: 4
  scheme: rk3
  g_variant: v2
"""

# No top-level scale: the script must fall back to network_g.upscale.
EDSR_X2 = """\
network_g:
  type: EDSR
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 64
  num_block: 16
  upscale: 2
"""

NO_NETWORK = """\
name: no_network
scale: 2
"""


@pytest.fixture(scope='module')
def script_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    # Each run imports torch and BasicSR (several seconds), so the tests share the runs. They go one after the
    # other: on two cores, parallel runs thrash and take longer than sequential ones.
    folder = tmp_path_factory.mktemp('options')
    runs = {}
    for name, text in {'rk3': RK3_X4, 'edsr': EDSR_X2, 'no_network': NO_NETWORK}.items():
        path = folder / f'{name}.yml'
        path.write_text(text)
        runs[name] = subprocess.run([sys.executable, '-m', 'oisr_cli', 'complexity', '-opt', str(path)], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
    return runs


def printed(stdout: str) -> dict[str, float]:
    """The numbers the script prints: parameters, conv parameters and MACs in G."""
    params = re.search(r'^parameters: ([\d,]+)$', stdout, re.MULTILINE)
    conv = re.search(r'^conv parameters: ([\d,]+)$', stdout, re.MULTILINE)
    macs = re.search(r'^MACs: ([\d.]+) G', stdout, re.MULTILINE)
    assert params and conv and macs, stdout
    return {
        'params': int(params.group(1).replace(',', '')),
        'conv_params': int(conv.group(1).replace(',', '')),
        'macs_g': float(macs.group(1)),
    }


def test_oisr_rk3_x4_matches_the_paper(script_runs):
    run = script_runs['rk3']
    assert run.returncode == 0, run.stderr
    numbers = printed(run.stdout)
    assert numbers['conv_params'] == 44_270_083
    assert numbers['params'] == 44_287_113 - 24  # the authors' count less their trainable mean shift
    assert numbers['macs_g'] == 2962.5
    assert 'x4, 1280x720 output (320x180 input)' in run.stdout


def test_basicsr_edsr_baseline_x2_matches_the_paper(script_runs):
    run = script_runs['edsr']
    assert run.returncode == 0, run.stderr
    numbers = printed(run.stdout)
    assert numbers['params'] == numbers['conv_params'] == 1_369_859
    assert numbers['macs_g'] == 316.2
    assert 'x2, 1280x720 output (640x360 input)' in run.stdout


def test_missing_network_g_is_a_clear_error(script_runs):
    run = script_runs['no_network']
    assert run.returncode == 2
    assert run.stderr.startswith('error: ') and 'has no network_g' in run.stderr
    assert 'Traceback' not in run.stderr and run.stdout == ''


# The remaining cases call main() in this process: same code path, without another multi-second import.


@pytest.fixture(scope='module')
def script():
    return complexity


def test_missing_file_is_a_clear_error(script, tmp_path: Path, capsys: pytest.CaptureFixture):
    missing = tmp_path / 'absent.yml'
    assert script.main(['-opt', str(missing)]) == 2
    assert capsys.readouterr().err == f'error: option file not found: {missing}\n'


def test_output_size_scales_the_macs(script, tmp_path: Path, capsys: pytest.CaptureFixture):
    path = tmp_path / 'edsr.yml'
    path.write_text(EDSR_X2)
    assert script.main(['-opt', str(path), '--height', '360', '--width', '640']) == 0
    out = capsys.readouterr().out
    # A quarter of the pixels: a quarter of the MACs, the same parameters.
    assert printed(out) == {'params': 1_369_859, 'conv_params': 1_369_859, 'macs_g': 79.1}
    assert '(79,062,220,800)' in out and 'x2, 640x360 output (320x180 input)' in out


@pytest.mark.parametrize('text,message', [
    ('network_g:\n  type: NoSuchArch\n  upscale: 2\n',
     r"bad\.yml: network_g\.type: not a registered architecture; got 'NoSuchArch'; allowed: .*OISR"),
    ('network_g:\n  type: OISR\n  upscale: 5\n', r'bad\.yml: network_g \(OISR\): upscale: 5'),
    ('network_g:\n  type: EDSR\n  num_in_ch: 3\n  num_out_ch: 3\n',
     r'the options give no integer scale \(scale: None, network_g\.upscale: None\)'),
    ('network_g:\n  type: EDSR\n  num_feat: 8\n',
     r'bad\.yml: network_g\.num_in_ch: required key is missing$'),
    ('network_g:\n  num_feat: 8\n  upscale: 2\n', r'network_g\.type: required key is missing; allowed: .*OISR'),
    ('- just\n- a list\n', r'bad\.yml holds no mapping of options \(got list\)'),
    ('network_g: [unclosed\n', r'bad\.yml is not valid YAML'),
])
def test_bad_option_files_are_clear_errors(script, tmp_path: Path, capsys: pytest.CaptureFixture, text: str,
                                           message: str):
    path = tmp_path / 'bad.yml'
    path.write_text(text)
    assert script.main(['-opt', str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ')
    assert re.search(message, err), err
