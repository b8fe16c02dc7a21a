"""Compare models side by side: parameters, MACs, latency and PSNR / SSIM on benchmark HR folders.

    oisr compare -opt options/test_OISR_LF_s_x2.yml options/test_OISR_RK2_s_x2.yml \\
        --datasets Set5 Set14 B100 --data-root datasets --output-dir results/comparison

Each ``-opt`` file gives a model: ``network_g`` (any registered architecture: OISR, EDSR, RCAN,
SwinIR, Bicubic, ...), its weights (``path.pretrain_network_g``) and its scale. A NODE-SR model serves any
scale and is measured at ``--scale N`` (an integer >= 2, as the protocol below needs), through the NODE-SR
inference of ``oisr infer`` with its option file's solver. Per model it measures

- parameters and MACs for a 1280x720 HR output (``oisr_basicsr.complexity``; conv weights
  times output pixels, the papers' convention; for NODE-SR, those of one solve: the network evaluations of
  its fixed-step solver times the network's at the output size);
- latency: median of ``--latency-runs`` forward passes (after ``--warmup`` passes) for a
  ``--latency-size`` HR output, on the CPU and, when there is one, the GPU;
- PSNR / SSIM per dataset with the paper protocol: HR cropped to a multiple of the scale, LR by
  MATLAB bicubic (``oisr_basicsr.data.resize.imresize_uint8``), SR quantised to 8 bits, Y channel,
  ``scale`` pixels shaved, BasicSR's ``calculate_psnr`` / ``calculate_ssim``. The images are made by
  ``BenchmarkHRDataset`` and measured as BasicSR's ``SRModel`` measures them, with the ``protocol``
  (and ``modcrop``) of the option file's dataset entry of the same ``name`` (``rgb`` when none names it
  and the file's entries do not all agree on one), so that a model's numbers equal those of
  ``python -m oisr_basicsr.test`` with its option file.

A dataset is a folder of HR images: ``<data-root>/<name>/HR`` (the layout of the shared benchmark
data), else ``<data-root>/<name>``, or a path to the folder itself. ``--output-dir`` receives
``comparison.md``, ``comparison.csv`` and ``psnr_vs_macs.png`` (one panel per dataset; networks
without parameters, like Bicubic, are drawn as horizontal lines), each written atomically, replacing the files of
an earlier comparison (never an option file, weights or dataset image; checked before any model is built). The plot
needs matplotlib (``pip install -e ".[plot]"``); without it the table and CSV are still written and
a line says why the plot is not. ``comparison.html`` holds the table, the plot, every model's PSNR per image
and the crops, in one self-contained page.

``--figure IMAGE:X,Y,SIZE`` (repeatable) adds the visual comparison papers show: the HR image with the box,
and the box's pixels from bicubic and every model, zoomed, each with the image's PSNR / SSIM, as
``figure_<dataset>_<image>_<X>_<Y>_<SIZE>.png`` and ``.pdf`` (``oisr_basicsr.tools.comparison_figure``; it
needs matplotlib). Bicubic is measured for it at each scale that no ``Bicubic`` model covers. Every request is
checked before any model runs. Errors are printed as ``error: <message>`` with exit status 2.
"""

import argparse
from pathlib import Path

from ..argument_types import integer_scale, non_negative_int, positive_int
from ..subcommand import Subcommand


class Compare(Subcommand):
    """``oisr compare``: :func:`oisr_basicsr.tools.compare.run`."""

    name = 'compare'
    summary = 'compare models on benchmarks: PSNR, SSIM, parameters, MACs, time'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('-opt', nargs='+', required=True, help='option files, one per model')
        parser.add_argument('--labels', nargs='+', help="row labels (default: each option file's name)")
        parser.add_argument('--datasets', nargs='+', required=True, help='dataset names or HR folders')
        parser.add_argument('--data-root', help='folder holding <name>/HR or <name> for each dataset')
        parser.add_argument('--scale', type=integer_scale, help='the scale NODE-SR models (any scale) are measured '
                            'at, an integer >= 2; a fixed-scale model accepts only its own')
        parser.add_argument('--output-dir', required=True, type=Path, help='folder for the Markdown, CSV and plot')
        parser.add_argument('--device', help='device for PSNR / SSIM (default: cuda when available, else cpu)')
        parser.add_argument('--latency-devices', nargs='*', help='devices to time on (default: cpu, and cuda when '
                            'available); give none to skip timing')
        parser.add_argument('--latency-size', type=positive_int, nargs=2, default=[720, 1280], metavar=('H', 'W'),
                            help='HR output size the latency is measured for (default: 720 1280)')
        parser.add_argument('--latency-runs', type=positive_int, default=5, help='timed runs (default: 5)')
        parser.add_argument('--warmup', type=non_negative_int, default=2, help='untimed runs first (default: 2)')
        parser.add_argument('--allow-random', action='store_true',
                            help='evaluate networks whose option file names no weights with random weights')
        parser.add_argument('--no-progress', dest='progress', action='store_false', help='hide the progress bars')
        parser.add_argument('--figure', action='append', default=[], metavar='IMAGE:X,Y,SIZE',
                            help='also draw the visual comparison of this box (top-left X, Y and side SIZE in HR '
                            'pixels) of an image of the datasets (name, stem or DATASET/NAME); repeat for more '
                            '(needs matplotlib)')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.compare import run

        return run(args)


COMMAND = Compare()
main = COMMAND.main
