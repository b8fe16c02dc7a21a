"""argparse types that refuse a value before anything runs, naming it: argparse prints
``oisr NAME: error: argument --tile: 0 is not a positive integer`` and exits with status 2."""

import argparse

# A traced ONNX input's side: torch.export treats a dimension of size 0 or 1 as a constant, so a dynamic one
# starts at 2 (the package's oisr_basicsr.tools.export_onnx.MIN_DYNAMIC_SIZE; a test keeps them equal).
MIN_DYNAMIC_SIZE = 2


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} is not a positive integer')
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is negative')
    return value


def positive_number(text: str) -> int | float:
    """argparse type: a number > 0 (NaN refused), as an int when it is integral (``--scale 2`` is the scale 2)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text} is not a positive number')
    return int(value) if value.is_integer() else value


def benchmark_scale(text: str) -> int:
    """argparse type: an integer scale >= 2, what the benchmark protocol (a crop to a multiple of it) needs."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f'{text} is not an integer >= 2')
    return value


def sample_side(text: str) -> int:
    """argparse type: a side of a traced input, at least the smallest size the dynamic axes allow."""
    value = int(text)
    if value < MIN_DYNAMIC_SIZE:
        raise argparse.ArgumentTypeError(f'{text} is smaller than {MIN_DYNAMIC_SIZE}')
    return value
