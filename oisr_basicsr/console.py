"""What a training or test run shows on the console.

BasicSR logs everything it does to its ``basicsr`` logger and, by default, to the console too: its banner, the
whole option dump, every dataset and network it builds. A run of this package keeps all of that in the log file
and shows on the console only what a person watching the run needs:

- warnings and errors;
- BasicSR's validation results and the iteration a run resumes from;
- during training, one line per ``logger.print_freq`` (iteration, epoch, losses, learning rate, speed, ETA) and,
  on a terminal only, a progress bar over the iterations.

``--verbose`` gives BasicSR's own console back instead: every record as BasicSR prints it, and no bar.
"""

import datetime
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from basicsr.utils import MessageLogger
from basicsr.utils.dist_util import get_dist_info
from tqdm import tqdm

# BasicSR's INFO records that a quiet console keeps, by how their text starts (BasicSR 1.4.2's wording).
CONSOLE_INFO_PREFIXES = ('Validation ', 'Resuming training from ')
# The entries of BasicSR's training-loop log_vars that are not losses.
LOOP_ENTRIES = ('epoch', 'iter', 'lrs', 'time', 'data_time')
# A level above every record's: set on BasicSR's console handler, it prints nothing.
SILENT = logging.CRITICAL + 1


def write_console_line(text: str) -> None:
    """Print ``text`` on stderr; through tqdm, so that a progress bar stays below the line instead of being cut."""
    tqdm.write(text, file=sys.stderr)


def shown_on_quiet_console(record: logging.LogRecord) -> bool:
    """Whether a record of BasicSR's logger reaches a quiet console: warnings, errors and the records that
    start with one of :data:`CONSOLE_INFO_PREFIXES`."""
    return record.levelno >= logging.WARNING or record.getMessage().startswith(CONSOLE_INFO_PREFIXES)


class QuietConsoleHandler(logging.Handler):
    """The console of a quiet run: the records :func:`shown_on_quiet_console` lets through, without BasicSR's
    time stamps (warnings and errors keep their level as a prefix)."""

    def __init__(self):
        super().__init__()
        self.addFilter(shown_on_quiet_console)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().rstrip()
        if record.levelno >= logging.WARNING:
            message = f'{record.levelname.lower()}: {message}'
        write_console_line(message)


def use_quiet_console(logger: logging.Logger, quiet: bool) -> None:
    """Show ``logger``'s records on the console through a :class:`QuietConsoleHandler` (``quiet``) or through
    BasicSR's own console handler; the log file gets every record either way. Idempotent.

    Args:
        logger: BasicSR's ``basicsr`` logger, as ``basicsr.utils.get_root_logger`` set it up.
        quiet: True for the quiet console, False for BasicSR's.
    """
    for handler in list(logger.handlers):
        if isinstance(handler, QuietConsoleHandler):
            logger.removeHandler(handler)
        elif type(handler) is logging.StreamHandler:  # BasicSR's console; its FileHandler is a subclass, kept
            handler.setLevel(SILENT if quiet else logging.NOTSET)
    if quiet:
        logger.addHandler(QuietConsoleHandler())


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, as BasicSR writes its ETA."""
    return str(datetime.timedelta(seconds=int(seconds)))


def training_line(current_iter: int, total_iter: int, epoch: int, losses: Mapping[str, float],
                  learning_rates: Sequence[float], seconds_per_iter: float | None) -> str:
    """The console line of one ``print_freq`` step, e.g.
    ``iter 50/600  epoch 1  l_pix 2.149e-02  lr 1.000e-03  8.31 it/s  ETA 0:01:06``.

    Args:
        current_iter: The iteration just finished.
        total_iter: ``train.total_iter``.
        epoch: BasicSR's epoch counter.
        losses: The model's current log (``l_pix`` and the like).
        learning_rates: One per parameter group.
        seconds_per_iter: The measured time per iteration; None before two iterations have finished, when the
            speed and the ETA are not known yet.
    """
    parts = [f'iter {current_iter}/{total_iter}', f'epoch {epoch}']
    parts += [f'{name} {value:.3e}' for name, value in losses.items()]
    parts.append('lr ' + ','.join(f'{rate:.3e}' for rate in learning_rates))
    if seconds_per_iter is None:
        parts.append('ETA --')
    else:
        speed = f'{1 / seconds_per_iter:.2f} it/s' if seconds_per_iter <= 1 else f'{seconds_per_iter:.2f} s/it'
        parts += [speed, f'ETA {format_duration(seconds_per_iter * (total_iter - current_iter))}']
    return '  '.join(parts)


class TrainingProgress:
    """The console of one training run on rank 0: one :func:`training_line` per ``print_freq`` and, when stderr
    is a terminal, a tqdm bar over the iterations. Other ranks show nothing."""

    def __init__(self):
        self.total_iter = 0
        self.bar: tqdm | None = None
        # (iteration, time) of the first and the latest iteration finished by this process: the speed is measured
        # between them, so neither start-up nor a resumed run's earlier iterations count.
        self.first: tuple[int, float] | None = None
        self.latest: tuple[int, float] | None = None

    def start(self, start_iter: int, total_iter: int) -> None:
        """Called when the training loop starts at ``start_iter`` (0, or the iteration a run resumes from)."""
        self.total_iter = total_iter
        if get_dist_info()[0] == 0 and sys.stderr.isatty():
            self.bar = tqdm(total=total_iter, initial=start_iter, unit='iter', file=sys.stderr, dynamic_ncols=True,
                            leave=False)

    def advance(self, current_iter: int) -> None:
        """Called after the update of iteration ``current_iter``."""
        now = time.monotonic()
        if self.first is None:
            self.first = (current_iter, now)
        self.latest = (current_iter, now)
        if self.bar is not None:
            self.bar.update(current_iter - self.bar.n)

    def seconds_per_iter(self) -> float | None:
        """The mean time per iteration since the first one this process finished; None until two have."""
        if self.first is None or self.latest is None or self.latest[0] == self.first[0]:
            return None
        return (self.latest[1] - self.first[1]) / (self.latest[0] - self.first[0])

    def report(self, log_vars: Mapping) -> None:
        """Print the line of BasicSR's ``log_vars`` (what its training loop hands its MessageLogger)."""
        if get_dist_info()[0] != 0:
            return
        losses = {name: value for name, value in log_vars.items() if name not in LOOP_ENTRIES}
        write_console_line(training_line(log_vars['iter'], self.total_iter, log_vars['epoch'], losses,
                                         log_vars['lrs'], self.seconds_per_iter()))

    def close(self) -> None:
        """Remove the bar (it is not part of what the run printed)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleMessageLogger(MessageLogger):
    """BasicSR's MessageLogger (the log file's lines, tensorboard) that also reports to a :class:`TrainingProgress`.

    Args:
        opt, start_iter, tb_logger: As for BasicSR's MessageLogger.
        progress: The run's console.
    """

    def __init__(self, opt: dict, start_iter: int = 1, tb_logger=None, *, progress: TrainingProgress):
        super().__init__(opt, start_iter, tb_logger)
        self.progress = progress
        progress.start(start_iter, int(opt['train']['total_iter']))

    def __call__(self, log_vars: dict) -> None:
        self.progress.report(dict(log_vars))  # a copy: BasicSR's own call pops the entries it formats
        super().__call__(log_vars)


def _with_progress(build_model: Callable, progress: TrainingProgress) -> Callable:
    """``build_model`` whose models tell ``progress`` when each iteration's update is done."""

    def build(opt: dict):
        model = build_model(opt)
        optimize_parameters = model.optimize_parameters

        def optimize(current_iter: int) -> None:
            optimize_parameters(current_iter)
            progress.advance(current_iter)

        model.optimize_parameters = optimize
        return model

    return build


@contextmanager
def training_console(pipeline: ModuleType, quiet: Callable[[], bool]) -> Iterator[TrainingProgress]:
    """Report the training loop of ``pipeline`` (``basicsr.train``) on the quiet console while the context lasts.

    Its MessageLogger and build_model are replaced for the duration and restored afterwards; the bar is removed.

    Args:
        pipeline: The module whose ``train_pipeline`` runs.
        quiet: Asked when the loop starts (the command line is parsed by then): False leaves BasicSR's console alone.
    """
    progress = TrainingProgress()
    message_logger, build_model = pipeline.MessageLogger, pipeline.build_model

    def choose_message_logger(*args, **kwargs) -> MessageLogger:
        if not quiet():
            return message_logger(*args, **kwargs)
        return ConsoleMessageLogger(*args, **kwargs, progress=progress)

    pipeline.MessageLogger = choose_message_logger
    pipeline.build_model = _with_progress(build_model, progress)
    try:
        yield progress
    finally:
        progress.close()
        pipeline.MessageLogger, pipeline.build_model = message_logger, build_model


def trained_model_line(models_folder: str | Path) -> str:
    """``trained model: <path>``: the absolute path of the ``net_g_latest`` file a finished run saved in
    ``models_folder``, which holds wherever the line is read (the quick start trains in a folder of its own)."""
    return f'trained model: {min(Path(models_folder).resolve().glob("net_g_latest.*"))}'
