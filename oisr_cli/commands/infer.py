"""Super-resolve your own images (no ground truth needed) with any trained model.

    oisr infer -opt options/test_OISR_RK3_x4.yml --input photos/ --output sr/ \\
        [--weights net_g.pth] [--device cuda] [--tile 256 --tile-overlap 16] [--precision fp16]

The network is ``network_g`` of the option file (any registered architecture: OISR, EDSR, RCAN,
SwinIR, ...) with the weights of ``path.pretrain_network_g`` or ``--weights`` (a BasicSR checkpoint
with ``params`` / ``params_ema``, or a bare state dict; ``.pth`` or ``.safetensors``). Every image in
``--input`` (a file or a folder of PNG, JPEG, BMP, TIFF or WebP files) is written to ``--output`` as
``<stem>.png``, replacing a file of that name (never an input, a link or anything but a file; all checked before
the model is built):

- colour images are super-resolved as RGB and saved with the input's bit depth (8 or 16 bits);
- grayscale images are super-resolved as three equal channels and saved as grayscale;
- the alpha channel of an RGBA image is upscaled with bicubic interpolation and kept.

``--tile`` bounds memory by running the network on windows of that many LR pixels; each window
carries ``--tile-overlap`` pixels of context that are cropped away, so with an overlap at least the
network's receptive-field radius the output equals the untiled one. ``--precision fp16`` / ``bf16``
runs the network under autocast (fp16 needs a GPU; bf16 also works on the CPU). Before the first image, the
largest input is refused, with the estimated size, if its result cannot fit in memory.

A NODE-SR option file (``model_type: NODESRModel``) super-resolves by any factor, given with
``--scale`` (e.g. ``--scale 2.7``; the output is ``floor(h t) x floor(w t)``), through
:class:`~oisr_basicsr.models.nodesr.NODESR` with the file's ODE solver; tiling is not available for it.
"""

import argparse

from ..argument_types import non_negative_int, positive_int, scale_factor
from ..choices import PRECISIONS
from ..shared_arguments import add_network_arguments
from ..subcommand import Subcommand


class Infer(Subcommand):
    """``oisr infer``: :func:`oisr_basicsr.tools.infer.run`."""

    name = 'infer'
    summary = 'super-resolve your own images with a trained model'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_network_arguments(parser)
        parser.add_argument('-i', '--input', required=True, help='image file or folder of images')
        parser.add_argument('-o', '--output', required=True, help='folder for the <stem>.png results')
        parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available)')
        parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                            help='fp16 / bf16 run under autocast; fp16 needs a GPU (default: fp32)')
        parser.add_argument('--tile', type=positive_int, help='window size in LR pixels (default: whole images)')
        parser.add_argument('--tile-overlap', type=non_negative_int, default=16,
                            help='context in LR pixels cropped from each inner window side (default: 16)')
        parser.add_argument('--scale', type=scale_factor, help='upscaling factor: any factor >= 1 for a NODE-SR '
                            'model (e.g. 2.7); a fixed-scale network accepts only its own')
        parser.add_argument('--save-states', action='store_true',
                            help='NODE-SR: also save the intermediate states I(t_i) to <output>/states/<stem>/')
        parser.add_argument('--no-progress', dest='progress', action='store_false', help='hide the progress bars')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.infer import run

        return run(args)


COMMAND = Infer()
main = COMMAND.main
