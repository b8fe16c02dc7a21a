"""The console of a run: quiet by default (one line per print_freq, the validation results, warnings; a bar on a
terminal only), BasicSR's own console with ``--verbose``; the banner and the option dump in the log file always."""

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
import yaml
from conftest import iterations_logged, run_entry_point, tiny_train_options

from oisr_basicsr.console import QuietConsoleHandler, TrainingProgress, training_line, use_quiet_console

NAME = 'console_x2'
BANNER = 'Version Information'
# A line of BasicSR's option dump (dict2str writes the options as "key: value" lines).
OPTION_DUMP = re.compile(r'^\s*name: console_x2$', re.MULTILINE)
TRAINING_LINE = re.compile(r'^iter (\d+)/3  epoch (\d+)  l_pix (\d\.\d{3}e[-+]\d\d)  lr (\d\.\d{3}e[-+]\d\d)  '
                           r'(?:(\d+\.\d\d) (it/s|s/it)  ETA (\d+:\d\d:\d\d)|ETA --)$')


def _options(paired_folders) -> dict:
    options = tiny_train_options(*paired_folders, NAME, total_iter=3)
    options['val']['val_freq'] = 2
    options['train']['scheduler']['milestones'] = [2]
    options['logger'].update(save_checkpoint_freq=100, use_tb_logger=False)
    return options


def _log(workdir) -> str:
    return next((workdir / 'experiments' / NAME).glob('train_*.log')).read_text()


def test_training_line_names_iteration_epoch_losses_rate_speed_and_eta():
    line = training_line(50, 600, 1, {'l_pix': 0.02149, 'l_percep': 1.5}, [1e-3, 5e-4], 0.125)
    assert line == ('iter 50/600  epoch 1  l_pix 2.149e-02  l_percep 1.500e+00  lr 1.000e-03,5.000e-04  8.00 it/s  '
                    'ETA 0:01:08')
    assert training_line(600, 600, 9, {'l_pix': 0.5}, [1e-4], 2.5).endswith('  2.50 s/it  ETA 0:00:00')
    assert training_line(1, 600, 0, {'l_pix': 0.5}, [1e-4], None) == 'iter 1/600  epoch 0  l_pix 5.000e-01  lr ' \
                                                                        '1.000e-04  ETA --'


def test_speed_is_measured_from_the_first_finished_iteration(monkeypatch):
    clock = iter([100.0, 103.0, 104.0])
    monkeypatch.setattr('oisr_basicsr.console.time.monotonic', lambda: next(clock))
    progress = TrainingProgress()
    progress.advance(40)  # a resumed run: the iterations before 40 took no time of this process
    assert progress.seconds_per_iter() is None
    progress.advance(43)
    assert progress.seconds_per_iter() == 1.0
    progress.advance(45)
    assert progress.seconds_per_iter() == 0.8


def test_quiet_console_keeps_warnings_and_validation_and_drops_the_rest(capsys):
    logger = logging.getLogger('oisr_console_test')
    basicsr_console = logging.StreamHandler()
    logger.addHandler(basicsr_console)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        use_quiet_console(logger, quiet=True)
        use_quiet_console(logger, quiet=True)  # idempotent: one quiet handler
        assert sum(isinstance(handler, QuietConsoleHandler) for handler in logger.handlers) == 1
        logger.info('Network [OISR] is created.')
        logger.info('Validation tiny_val\n\t # psnr: 18.0867\tBest: 18.0867 @ 2 iter\n')
        logger.info('Resuming training from epoch: 1, iter: 3.')
        logger.warning('Multiple validation datasets are *only* supported by SRModel.')
        assert capsys.readouterr().err == ('Validation tiny_val\n\t # psnr: 18.0867\tBest: 18.0867 @ 2 iter\n'
                                           'Resuming training from epoch: 1, iter: 3.\n'
                                           'warning: Multiple validation datasets are *only* supported by SRModel.\n')
        use_quiet_console(logger, quiet=False)
        assert not any(isinstance(handler, QuietConsoleHandler) for handler in logger.handlers)
        logger.info('Network [OISR] is created.')
        assert capsys.readouterr().err == 'Network [OISR] is created.\n'
    finally:
        logger.handlers.clear()


@pytest.mark.slow
def test_training_console_is_one_line_per_print_freq_and_the_log_keeps_everything(tmp_path, paired_folders):
    result = run_entry_point('oisr_basicsr.train', _options(paired_folders), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    model = tmp_path / 'experiments' / NAME / 'models' / 'net_g_latest.pth'
    assert result.stdout == ''
    lines = result.stderr.splitlines()
    assert lines[-1] == f'trained model: {model}'
    training = [TRAINING_LINE.match(line) for line in lines if line.startswith('iter ')]
    assert [int(match[1]) for match in training] == iterations_logged(result.stderr) == [1, 2, 3]
    # Two images per batch, four images: two iterations per epoch.
    assert [int(match[2]) for match in training] == [0, 0, 1]
    assert training[0][5] is None and all(match[5] for match in training[1:])  # no speed before two iterations
    # The learning rate of each update: halved at iteration 3 (milestone 2; BasicSR steps from iteration 2 on).
    assert [float(match[4]) for match in training] == [1e-3, 1e-3, 5e-4]
    log = _log(tmp_path)
    logged_losses = [float(v) for v in re.findall(r'l_pix: ([0-9.e+-]+)', log)]
    assert [float(match[3]) for match in training] == pytest.approx(logged_losses, rel=1e-3)
    # Validation at iteration 2 and after the last one; nothing else, and no bar off a terminal.
    others = [line for line in lines if not line.startswith(('iter ', 'trained model: '))]
    assert others[::2] == ['Validation tiny_val'] * 2
    validated_at = [re.fullmatch(r'\t # psnr: [0-9.]+\tBest: [0-9.]+ @ (\d+) iter', line)[1] for line in others[1::2]]
    assert len(validated_at) == 2 and validated_at[0] == '2'  # BasicSR counts the last one past total_iter
    assert '\r' not in result.stderr
    assert BANNER in log and OPTION_DUMP.search(log) and 'Disable distributed.' not in result.stderr


@pytest.mark.slow
def test_verbose_brings_back_basicsr_console(tmp_path, paired_folders):
    result = run_entry_point('oisr_basicsr.train', _options(paired_folders), tmp_path, '--verbose')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == 'Disable distributed.\n'
    assert result.stderr.count(BANNER) == 1 and OPTION_DUMP.search(result.stderr)
    assert re.findall(r'iter:\s+(\d+), lr', result.stderr) == ['1', '2', '3']  # BasicSR's own lines
    assert not re.search(r'^iter \d', result.stderr, re.MULTILINE)
    assert BANNER in _log(tmp_path)


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path, paired_folders):
    (tmp_path / 'options.yml').write_text(yaml.safe_dump(_options(paired_folders)))
    main_end, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    process = subprocess.Popen([sys.executable, '-m', 'oisr_basicsr.train', '-opt', 'options.yml'], cwd=tmp_path,
                               stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    shown = b''
    while chunk := _read(main_end):
        shown += chunk
    os.close(main_end)
    assert process.wait(timeout=600) == 0, shown.decode()[-3000:]
    text = shown.decode()
    assert re.search(r'\r\s*67%\|[^|]+\| 2/3 ', text)  # tqdm's bar, redrawn in place
    # What remains on screen of each line: the text after the bar's last erasure.
    lines = [line.rsplit('\r', 1)[-1] for line in text.split('\r\n')]
    assert [int(TRAINING_LINE.match(line)[1]) for line in lines if line.startswith('iter ')] == [1, 2, 3]


def _read(file_descriptor: int) -> bytes:
    """The next output of a pseudo-terminal; empty once the other end is closed (Linux raises EIO then)."""
    try:
        return os.read(file_descriptor, 65536)
    except OSError:
        return b''
