"""Export the generator of an option file to ONNX, check it against PyTorch, and write its model card.

    oisr export -opt options/test_OISR_RK3_x4.yml [--weights net_g.pth] --output oisr_rk3_x4.onnx \\
        [--precision fp16] [--opset 18] [--parity-image photo.png]
    oisr export -opt options/test_NODESR_VDSR_B100.yml --scale 2.5 --sample-size 120 160 \\
        --output nodesr_vdsr_x2.5.onnx

Fixed-scale networks (OISR, EDSR, RCAN, ...): one input ``lq`` (``N x C x H x W`` RGB in [0, 1]) and one
output ``sr`` (``N x C x sH x sW``, not clipped), with dynamic batch, height and width (``torch.export``).
``--precision fp16`` (or ``bf16``) exports the network in that type: input and output are then fp16
(bf16) tensors, as deployment tools that run fp16 models expect.

NODE-SR (``model_type: NODESRModel``) is exported for one scale ``--scale t`` and the option file's
fixed-step solver: the bicubic ``I(t)`` and every solver step are unrolled into the graph, which
therefore has a fixed LR size (``--sample-size``, or the parity image's size) and batch 1; the output
is ``floor(h t) x floor(w t)``.

The exporter checks parity itself before anything is written: onnxruntime (CPU) runs the graph on
``--parity-image`` (or a generated image of ``--sample-size``) and, for dynamic graphs, on a second
generated image of another size, and the largest absolute difference from PyTorch in fp32 (the
package's own NODE-SR inference for NODE-SR), on outputs clipped to [0, 1], is printed; above
``--tolerance`` (default 1e-4 for fp32, 4e-3, one 8-bit level, for fp16 / bf16) it is an error. A graph
onnxruntime cannot run (bf16 convolutions on the CPU provider) or whose output holds NaN or infinity (an fp16
overflow) is an error too. The model's metadata holds ``scale``, ``arch``, ``precision`` and ``opset``; a model
card (``<output>.card.json``, see ``oisr_basicsr.tools.model_card``) is written beside it. The model and its card
replace files of those names only once the export has passed its parity check, and never the option file, the
weights or the parity image. Needs ``onnx``, ``onnxscript`` and ``onnxruntime`` (``pip install -e .[export]``).
Errors are printed as ``error: <message>`` with exit status 2.
"""

import argparse
from pathlib import Path

from ..argument_types import non_negative_float, sample_side, scale_factor
from ..choices import DEFAULT_OPSET, PRECISIONS
from ..shared_arguments import add_network_arguments
from ..subcommand import Subcommand


class Export(Subcommand):
    """``oisr export``: :func:`oisr_basicsr.tools.export_onnx.run`."""

    name = 'export'
    summary = 'export a trained model to ONNX, checked against PyTorch'

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_network_arguments(parser)
        parser.add_argument('--output', required=True, type=Path,
                            help='the .onnx file to write (replaced if it exists)')
        parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                            help='type of the weights, input and output (default: fp32)')
        parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default: {DEFAULT_OPSET})')
        parser.add_argument('--scale', type=scale_factor, help='NODE-SR: the one scale to export (e.g. 2.5)')
        parser.add_argument('--sample-size', type=sample_side, nargs=2, default=[64, 64], metavar=('H', 'W'),
                            help="LR size of the traced and generated inputs; NODE-SR's fixed LR size (default: 64 64)")
        parser.add_argument('--parity-image', help='image to check parity on (default: a generated one)')
        parser.add_argument('--tolerance', type=non_negative_float, help='largest accepted difference from PyTorch '
                            'fp32, images in [0, 1] (default: 1e-4 for fp32, 4e-3 for fp16 and bf16)')
        parser.add_argument('--experiment', type=Path, help='BasicSR experiment folder of the training run, for the '
                            'model card (default: the one holding the weights, if they are in models/ of one)')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.export_onnx import run

        return run(args)


COMMAND = Export()
main = COMMAND.main
