"""What the command lines of every tool share: errors on one line, and number types that refuse NaN and infinity.

A type raises :class:`argparse.ArgumentTypeError`, which the parser reports naming the argument, e.g.
``error: argument --scale: inf is not a finite number (see oisr infer --help)``, with exit status 2.
"""

import argparse
import math
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser as the tools use it: the description printed as written (module docstrings hold the
    examples), and a command-line error reported like every other user error, as one ``error: ...`` line with exit
    status 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'{text} is not a finite number')
    return value


def _integer_at_least(text: str, minimum: int, refusal: str) -> int:
    value = _integer(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f'{text} {refusal}')
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a tile, a size, a count)."""
    return _integer_at_least(text, 1, 'is not a positive integer')


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (an overlap, a number of warm-up runs)."""
    return _integer_at_least(text, 0, 'is negative')


def integer_scale(text: str) -> int:
    """argparse type: an integer upscaling factor >= 2, what a crop to a multiple of the scale needs."""
    return _integer_at_least(text, 2, 'is not an integer >= 2')


def scale_factor(text: str) -> int | float:
    """argparse type: a finite upscaling factor >= 1; an integral one as an int, so that ``--scale 4`` is the 4 of
    a network's options and prints as ``4``."""
    value = _finite(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} is below 1; a scale factor enlarges')
    return int(value) if value.is_integer() else value


def non_negative_float(text: str) -> float:
    """argparse type: a finite, non-negative bound on a difference."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is negative')
    return value
