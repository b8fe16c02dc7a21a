"""PSNR against the scale factor for a NODE-SR model, seen and unseen scales (the NODE-SR paper's Fig. 2).

    oisr plot-scales -opt options/test_NODESR_VDSR_B100.yml --hr-dir datasets/B100/HR \\
        --output psnr_vs_scale.png [--weights W] [--scales 1.1 1.15 ...] [--csv out.csv]

The option file gives ``network_g`` (the dynamics), its weights (``path.pretrain_network_g``, or ``--weights``)
and the ``ode`` block; the super-resolution is :class:`~oisr_basicsr.models.nodesr.NODESR`'s, the NODE-SR
inference of every tool and of the model's own test (from ``I(t0)``, the bicubic upscale of the LR image, to
``t = 1``). Per scale ``t`` and HR image: LR and reference by
:func:`~oisr_basicsr.data.continuous_scale_dataset.benchmark_pair` (Meta-SR up to x4, LIIF above), SR and bicubic
(``I(t0)`` itself) quantised to 8 bits, BasicSR's ``calculate_psnr`` on the Y channel with ``ceil(t)`` pixels
shaved; the PSNR is averaged over the folder.

Default scales: the training scales 1.1, 1.2, ..., 4.0 ("seen", filled markers) and the unseen 1.15, 1.25, ...,
3.95, 4.5, 5, 6, 8 (hollow markers). A scale is "seen" when it is one of the training scales 1.1, ..., 4.0.
The plot and the CSV replace files of those names (never an input; checked before any work). Errors are printed as
``error: <message>`` with exit status 2.
"""

import argparse

from ..argument_types import scale_factor
from ..subcommand import Subcommand


class PlotScales(Subcommand):
    """``oisr plot-scales``: :func:`oisr_basicsr.tools.plot_scales.run`."""

    name = 'plot-scales'
    summary = 'PSNR of a NODE-SR model against the scale factor, as a plot and CSV'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('-opt', required=True, help='NODE-SR option file (model_type: NODESRModel)')
        parser.add_argument('--hr-dir', required=True, help='folder of HR images')
        parser.add_argument('--output', default='psnr_vs_scale.png', help='PNG to write (replaced if it exists)')
        parser.add_argument('--weights', help='checkpoint replacing path.pretrain_network_g')
        parser.add_argument('--scales', type=scale_factor, nargs='+',
                            help='scales (default: seen 1.1..4.0 and unseen ones)')
        parser.add_argument('--csv', help='also write the numbers as CSV')
        parser.add_argument('--device', help='cpu, cuda or cuda:N (default: the GPU if there is one)')
        parser.add_argument('--allow-random', action='store_true', help='run with random weights if none are given')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.plot_scales import run

        return run(args)


COMMAND = PlotScales()
main = COMMAND.main
