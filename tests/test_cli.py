"""The ``oisr`` command: every subcommand's help with its examples, a torch-free ``oisr --help``, the option
templates (listed, copied, written for a user without the repository; served from ``options/`` in a checkout and
from the package data of a built wheel), and from a fresh non-editable install in an empty folder:
``oisr options copy``, ``oisr quickstart`` and ``oisr infer`` on the quick start's model."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.parse
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from oisr_basicsr.options import json_schema
from oisr_basicsr.tools import option_templates
from oisr_cli import argument_types, choices
from oisr_cli.commands import test as test_command
from oisr_cli.commands import train as train_command
from oisr_cli.main import SUBCOMMANDS, main

OPTIONS_DIR = REPO_ROOT / 'options'
# Paths of the repository, which a user who installed the package does not have.
REPOSITORY_PATHS = re.compile(r'\b(options|scripts|oisr_basicsr|oisr_cli|docs|tests|benchmarks)/|README|\.py\b')


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    text = _help(capsys, ['--help'])
    names = ['train', 'test', 'check', 'infer', 'convert', 'export', 'compare', 'complexity', 'prepare-data',
             'plot-scales', 'quickstart', 'options']
    assert [command.name for command in SUBCOMMANDS] == names
    for command in SUBCOMMANDS:
        assert re.search(rf'^\s+{command.name}\s+{re.escape(command.summary[:20])}', text, re.MULTILINE), command.name
    assert 'oisr options copy train_OISR_RK3_x4' in text


@pytest.mark.parametrize('name', [command.name for command in SUBCOMMANDS])
def test_subcommand_help_explains_itself_with_examples(capsys, name):
    text = _help(capsys, [name, '--help'])
    assert text.startswith(f'usage: oisr {name} ')
    # Each help shows at least one example command line of its own subcommand.
    assert re.search(rf'^\s+oisr {name} \S', text, re.MULTILINE), text


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(['trian'])
    assert exit_.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_top_level_help_imports_neither_torch_nor_the_package():
    code = ('import sys\nfrom oisr_cli.main import main\ntry:\n    main(["--help"])\nexcept SystemExit:\n    pass\n'
            'print(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "basicsr", "oisr_basicsr", "numpy"}))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == '[]'


def test_a_checkout_serves_its_option_files():
    # git stores the templates once, in options/; the package data exists only in a built package.
    assert not list((REPO_ROOT / 'oisr_basicsr' / 'templates').glob('*.yml'))
    assert option_templates.template_folder() == OPTIONS_DIR
    assert list(option_templates.template_files()) == sorted(path.stem for path in OPTIONS_DIR.glob('*.yml'))


@pytest.mark.parametrize('name', sorted(path.stem for path in OPTIONS_DIR.glob('*.yml')))
def test_copied_template_says_how_to_run_it_and_names_no_repository_path(tmp_path, name):
    text = option_templates.copy_template(name, tmp_path).read_text()
    header = text[:text.index('\nname: ')]
    command = f'oisr {"train" if name.startswith("train_") else "test"} -opt {name}.yml'
    assert f'\n#   {command}\n' in header
    # The first line points editors at the installed JSON Schema, a file of the package wherever it is installed.
    schema_line, body = text.split('\n', 1)
    assert schema_line.startswith('# yaml-language-server: $schema=file://')
    assert not REPOSITORY_PATHS.search(body), REPOSITORY_PATHS.search(body)
    assert 'Written by' not in text and 'not this file' not in text


def test_options_list_names_every_template_with_its_first_line(capsys):
    assert main(['options', 'list']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list(OPTIONS_DIR.glob('*.yml')))
    listed = dict(line.split(None, 1) for line in lines)
    assert listed['train_OISR_RK3_x4'] == "OISR-RK3, x4: the paper's recipe (OISR, Sec. 4.2)."
    assert listed['test_NODESR_RDN_B100'] == "NODE-RDN: B100 at x1.1, x1.2, ..., x4.0 (the paper's Table 2)."


def test_options_copy_writes_the_template_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(['options', 'copy', 'train_OISR_RK3_x4']) == 0
    modeline = f'# yaml-language-server: $schema={json_schema.SCHEMA_FILE.as_uri()}\n'
    expected = modeline + (OPTIONS_DIR / 'train_OISR_RK3_x4.yml').read_text()
    assert (tmp_path / 'train_OISR_RK3_x4.yml').read_text() == expected
    assert capsys.readouterr().out == 'wrote train_OISR_RK3_x4.yml\n'
    assert main(['options', 'copy', 'train_OISR_RK3_x4.yml', 'mine.yml']) == 0
    assert (tmp_path / 'mine.yml').read_text() == expected
    (tmp_path / 'runs').mkdir()
    assert main(['options', 'copy', 'test_OISR_LF_x2', 'runs']) == 0
    copied = tmp_path / 'runs' / 'test_OISR_LF_x2.yml'
    assert copied.read_text() == modeline + (OPTIONS_DIR / 'test_OISR_LF_x2.yml').read_text()
    capsys.readouterr()
    assert main(['options', 'copy', 'train_OISR_RK3_x4', 'mine.yml']) == 2
    assert capsys.readouterr().err == 'error: mine.yml already exists; remove it or choose another output location\n'


def test_options_copy_names_the_closest_templates(tmp_path, capsys):
    assert main(['options', 'copy', 'train_OISR_RK3_x5', str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("error: 'train_OISR_RK3_x5' is not an option template; did you mean "
                                       'train_OISR_RK3_x4, train_OISR_RK3_x3, train_OISR_RK3_x2?\n')
    assert main(['options', 'copy', 'nothing_like_it', str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("error: 'nothing_like_it' is not an option template; see oisr options list\n")
    assert list(tmp_path.iterdir()) == []


def test_copied_template_names_the_installed_schema_for_editors(tmp_path, capsys):
    assert main(['options', 'copy', 'train_OISR_LF_x2', str(tmp_path)]) == 0
    first_line = (tmp_path / 'train_OISR_LF_x2.yml').read_text().splitlines()[0]
    uri = re.fullmatch(r'# yaml-language-server: \$schema=(file://\S+)', first_line)[1]
    assert Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path)).read_text() == json_schema.schema_text()
    capsys.readouterr()
    assert main(['options', 'schema']) == 0
    assert capsys.readouterr().out == json_schema.schema_text()
    assert main(['options', 'schema', '--output', str(tmp_path / 'options.schema.json')]) == 0
    assert json.loads((tmp_path / 'options.schema.json').read_text()) == json_schema.option_file_schema()
    assert main(['options', 'schema', '--output', str(tmp_path / 'options.schema.json')]) == 2  # never overwritten


def test_template_description_is_the_first_comment_line():
    assert option_templates.describe('# OISR-LF, x2: test.\n# more\nname: x\n') == 'OISR-LF, x2: test.'
    assert option_templates.describe('') == ''


def _source_copy(tmp_path: Path) -> Path:
    """What a build of the package reads, copied out of the repository so that the build writes nothing into it."""
    source = tmp_path / 'source'
    for name in ('oisr_basicsr', 'oisr_cli', 'options'):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'pyproject.toml', 'README.md', 'MANIFEST.in'):
        shutil.copy(REPO_ROOT / name, source / name)
    return source


@pytest.mark.slow
def test_built_wheel_ships_the_option_files_and_serves_them(tmp_path):
    build = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
                            '--quiet', '--wheel-dir', str(tmp_path / 'wheels'), str(_source_copy(tmp_path))],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (tmp_path / 'wheels').glob('*.whl')
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(name).name: archive.read(name) for name in archive.namelist()
                   if name.startswith('oisr_basicsr/templates/') and name.endswith('.yml')}
        assert shipped == {path.name: path.read_bytes() for path in OPTIONS_DIR.glob('*.yml')}
        archive.extractall(tmp_path / 'installed')  # a pure-Python wheel, unpacked: the installed package
    work = tmp_path / 'empty'
    work.mkdir()
    env = {**os.environ, 'PYTHONPATH': str(tmp_path / 'installed')}
    code = ('import sys\nfrom oisr_basicsr.tools import option_templates\nfrom oisr_cli.main import main\n'
            'print(option_templates.template_folder())\nsys.exit(main(sys.argv[1:]))')

    def oisr_options(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, '-c', code, 'options', *args], cwd=work, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.splitlines()

    folder, *listed = oisr_options('list')
    assert folder == str(tmp_path / 'installed' / 'oisr_basicsr' / 'templates')
    assert [line.split()[0] for line in listed] == sorted(path.stem for path in OPTIONS_DIR.glob('*.yml'))
    assert oisr_options('copy', 'train_NODESR_VDSR')[1:] == ['wrote train_NODESR_VDSR.yml']
    # The copy is the shipped file after one line that points editors at the installed package's JSON Schema.
    schema_line, body = (work / 'train_NODESR_VDSR.yml').read_bytes().split(b'\n', 1)
    assert body == (OPTIONS_DIR / 'train_NODESR_VDSR.yml').read_bytes()
    schema_file = tmp_path / 'installed' / 'oisr_basicsr' / 'options' / 'option_file.schema.json'
    assert schema_line == f'# yaml-language-server: $schema={schema_file.as_uri()}'.encode()
    assert schema_file.is_file()


def _installed_venv(tmp_path: Path) -> Path:
    """A fresh venv holding a non-editable install of a copy of the repository; the dependencies come from the
    running interpreter's site-packages (a path entry, so that its .pth files, an editable install among them,
    are not run)."""
    source = _source_copy(tmp_path)
    env_dir = tmp_path / 'venv'
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / 'bin' / 'python'
    site_packages = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(site_packages, 'dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    install = subprocess.run([str(python), '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
                              '--quiet', str(source)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir / 'bin'


@pytest.mark.slow
def test_fresh_install_copies_options_runs_the_quickstart_and_infers(tmp_path):
    bin_dir = _installed_venv(tmp_path)
    work = tmp_path / 'empty'
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}')

    def oisr(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([str(bin_dir / 'oisr'), *args], cwd=work, env=env, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    where = subprocess.run([str(bin_dir / 'python'), '-c', 'import oisr_basicsr; print(oisr_basicsr.__file__)'],
                           cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(tmp_path / 'venv')), where.stdout + where.stderr
    oisr('options', 'copy', 'test_OISR_LF_s_x2')
    modeline, copied = (work / 'test_OISR_LF_s_x2.yml').read_text().split('\n', 1)
    assert copied == (OPTIONS_DIR / 'test_OISR_LF_s_x2.yml').read_text()
    installed_schema = Path(urllib.parse.unquote(modeline.removeprefix('# yaml-language-server: $schema=file://')))
    assert installed_schema.is_relative_to(tmp_path / 'venv')
    assert installed_schema.read_text() == json_schema.schema_text()  # shipped in the package
    quickstart = oisr('quickstart', '--iters', '4', '--workdir', 'qs', timeout=1200)
    assert re.search(r'^\| OISR-LF \(small\) \| [0-9.]+ \| [0-9.]+ \|$', quickstart.stdout, re.MULTILINE)
    inputs = work / 'qs' / 'data' / 'test' / 'LRbicx2'
    oisr('infer', '-opt', 'qs/test_quickstart_OISR_LF_x2.yml', '--input', str(inputs), '--output', 'sr',
         '--device', 'cpu', '--no-progress')
    names = sorted(path.name for path in inputs.glob('*.png'))
    assert names and sorted(path.name for path in (work / 'sr').iterdir()) == names


@pytest.mark.slow
@pytest.mark.parametrize('module, name', [('oisr_basicsr.train', 'train'), ('oisr_basicsr.test', 'test'),
                                          ('oisr_basicsr.infer', 'infer'), ('oisr_basicsr.quickstart', 'quickstart')])
def test_earlier_module_names_run_the_same_commands(capsys, module, name):
    # `python -m oisr_basicsr.train` (torchrun's form) and the earlier names keep working: the same command line.
    result = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == _help(capsys, [name, '--help'])


def test_every_help_imports_neither_torch_nor_basicsr():
    # One process for all of them: whichever subcommand's --help imported torch or BasicSR is named.
    code = (
        'import sys\n'
        'from oisr_cli.main import SUBCOMMANDS, main\n'
        'heavy = []\n'
        'for command in SUBCOMMANDS:\n'
        '    try:\n'
        '        main([command.name, "--help"])\n'
        '    except SystemExit:\n'
        '        pass\n'
        '    heavy += [(command.name, name) for name in ("torch", "basicsr", "oisr_basicsr") if name in sys.modules]\n'
        'print(len(SUBCOMMANDS), heavy)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f'{len(SUBCOMMANDS)} []'


def test_the_package_never_imports_the_command_line():
    """Layers point one way: ``oisr_cli`` imports ``oisr_basicsr``, never the reverse, except where a module run as
    ``python -m`` hands its command line to ``oisr_cli`` (inside ``if __name__ == '__main__':``)."""
    for path in sorted((REPO_ROOT / 'oisr_basicsr').rglob('*.py')):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        main_blocks = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) ==
                       "__name__ == '__main__'"]
        allowed = {id(inner) for block in main_blocks for inner in ast.walk(block)}
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split('.')[0] == 'oisr_cli' for name in names):
                assert id(node) in allowed, f'{path.relative_to(REPO_ROOT)}:{node.lineno} imports oisr_cli'


def test_parser_choices_are_the_package_values():
    from oisr_basicsr import complexity, precisions
    from oisr_basicsr.archs.oisr_arch import PAPER_MODELS
    from oisr_basicsr.checkpoints import conversion
    from oisr_basicsr.tools import export_onnx

    assert choices.PRECISIONS == tuple(precisions.PRECISIONS)
    assert choices.MACS_OUTPUT_SIZE == complexity.MACS_OUTPUT_SIZE
    assert choices.PAPER_MODELS == tuple(PAPER_MODELS)
    assert choices.CONVERSION_SCALES == conversion.SCALES
    assert choices.DEFAULT_OPSET == export_onnx.DEFAULT_OPSET
    assert argument_types.MIN_DYNAMIC_SIZE == export_onnx.MIN_DYNAMIC_SIZE


@pytest.mark.parametrize('argv, local_rank', [(['--local-rank=3'], 3), (['--local-rank', '1'], 1),
                                              (['--local_rank=2'], 2), ([], 0)])
def test_local_rank_of_the_legacy_launcher_is_accepted(argv, local_rank):
    # torch.distributed.launch passes --local-rank; BasicSR's own parser knows only --local_rank.
    for command in (train_command.COMMAND, test_command.COMMAND):
        args = command.build_parser().parse_args(['-opt', 'x.yml', *argv, '--launcher', 'pytorch'])
        assert args.local_rank == local_rank and args.launcher == 'pytorch'


INFER = ['infer', '-opt', 'o.yml', '-i', 'in', '-o', 'out']


@pytest.mark.parametrize('argv, message', [
    ([*INFER, '--tile', '0'], 'argument --tile: 0 is not a positive integer'),
    ([*INFER, '--tile-overlap', '-1'], 'argument --tile-overlap: -1 is negative'),
    ([*INFER, '--scale', 'nan'], 'argument --scale: nan is not a finite number'),
    ([*INFER, '--precision', 'fp8'],
     "argument --precision: invalid choice: 'fp8' (choose from 'fp32', 'bf16', 'fp16')"),
    (['compare', '-opt', 'o.yml', '--datasets', 'Set5', '--output-dir', 'c', '--scale', '1'],
     'argument --scale: 1 is not an integer >= 2'),
    (['export', '-opt', 'o.yml', '--output', 'm.onnx', '--sample-size', '1', '8'],
     'argument --sample-size: 1 is smaller than 2'),
    (['complexity', '-opt', 'o.yml', '--height', '0'], 'argument --height: 0 is not a positive integer'),
    (['convert', 'a.pt', 'b.pth', '--model', 'RK4', '--scale', '2'],
     "argument --model: invalid choice: 'RK4' (choose from 'LF-s', 'RK2-s', 'LF', 'RK2', 'RK3')"),
])
def test_refused_arguments_are_one_usage_error_before_any_import(argv, message):
    code = ('import sys\nfrom oisr_cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n'
            '    print(exit_.code, "torch" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code, *argv], capture_output=True, text=True, timeout=60)
    assert result.stdout == '2 False\n'
    assert result.stderr == f'error: {message} (see oisr {argv[0]} --help)\n'
