"""The tools' plots as files: matplotlib (an optional extra) without a display, each figure written through the
outputs gate."""

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..outputs import DEFAULT_RULES, OutputRules, atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> ModuleType:
    """matplotlib's ``pyplot`` on the Agg backend, which draws into files only and never needs a display."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    return plt


def write_png(fig: 'Figure', path: Path, dpi: int, rules: OutputRules = DEFAULT_RULES) -> None:
    """Lay ``fig`` out, write it as a PNG atomically, and close it, whether it was written or not.

    Args:
        fig: A figure of :func:`pyplot`.
        path: The PNG file.
        dpi: Its resolution.
        rules: What the write may not replace (:class:`~oisr_basicsr.outputs.OutputRules`).
    """
    fig.tight_layout()
    try:
        with atomic_output(path, rules) as file:
            fig.savefig(file, format='png', dpi=dpi)
    finally:
        pyplot().close(fig)
