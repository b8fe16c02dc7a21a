"""Convert an OISR checkpoint released by the authors (HolmesShuan/OISR-PyTorch) for this package.

    oisr convert OISR_RK3_x4.pt experiments/OISR_RK3_x4/models/net_g_latest.pth \\
        --model RK3 --scale 4

writes ``{'params': state_dict}`` (as safetensors when the output ends in ``.safetensors``), which
``options/test_OISR_RK3_x4.yml`` loads (its ``pretrain_network_g`` is that output path), so the test
entry point evaluates the authors' model:

    python -m oisr_basicsr.test -opt options/test_OISR_RK3_x4.yml

The input is read with ``torch.load(weights_only=True)``, or without any pickle when it is a
``.safetensors`` file: files holding anything but tensors (for
example a whole pickled model) are refused, never unpickled. Names and shapes must match the model
exactly; otherwise every missing, unexpected or mis-shaped tensor is listed and nothing is written.
A model card (``<output>.card.json``: architecture, scale, parameters, MACs, SHA-256 of the weights and of
the input) is written beside the output. Neither replaces an existing file. Errors are printed as
``error: <message>`` with exit status 2.
"""

import argparse

from ..choices import CONVERSION_SCALES, PAPER_MODELS
from ..subcommand import Subcommand


class Convert(Subcommand):
    """``oisr convert``: :func:`oisr_basicsr.tools.convert.run`."""

    name = 'convert'
    summary = "convert the OISR authors' checkpoints to this package's layout"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('input', help="the authors' checkpoint (a state dict saved with torch.save)")
        parser.add_argument('output', help='the .pth or .safetensors file to write; must not exist yet')
        parser.add_argument('--model', required=True, choices=PAPER_MODELS, help='paper model of the checkpoint')
        parser.add_argument('--scale', required=True, type=int, choices=CONVERSION_SCALES, help='upscaling factor')

    def run(self, args: argparse.Namespace) -> int:
        from oisr_basicsr.tools.convert import run

        return run(args)


COMMAND = Convert()
main = COMMAND.main
