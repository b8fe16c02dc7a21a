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
import os
import sys

from ..archs.oisr_arch import PAPER_MODELS
from ..checkpoints.card import build_model_card, model_card_path, sha256_of, write_model_card
from ..checkpoints.conversion import SCALES, conversion_rules, convert_checkpoint
from ..errors import UserError, error_status
from ..outputs import check_output_path
from .arguments import ArgumentParser

AUTHORS_REPOSITORY = 'https://github.com/HolmesShuan/OISR-PyTorch'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = ArgumentParser(prog='oisr convert', description=__doc__)
    parser.add_argument('input', help="the authors' checkpoint (a state dict saved with torch.save)")
    parser.add_argument('output', help='the .pth or .safetensors file to write; must not exist yet')
    parser.add_argument('--model', required=True, choices=list(PAPER_MODELS), help='paper model of the checkpoint')
    parser.add_argument('--scale', required=True, type=int, choices=SCALES, help='upscaling factor')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert; returns the exit status."""
    args = parse_args(argv)
    rules = conversion_rules(args.input)
    try:
        for output in (args.output, model_card_path(args.output)):  # both refused before the work, if they must be
            check_output_path(output, rules)
        count = convert_checkpoint(args.input, args.output, args.model, args.scale)
        option_file = f'options/test_OISR_{args.model.replace("-", "_")}_x{args.scale}.yml'
        print(f'wrote {args.output} ({count} tensors) for the network of {option_file}')
        network_opt = {'type': 'OISR', **PAPER_MODELS[args.model], 'upscale': args.scale}
        source = {'convertedFrom': {'file': os.path.basename(args.input), 'sha256': sha256_of(args.input),
                                    'origin': f"the authors' release ({AUTHORS_REPOSITORY})"},
                  'optionFile': option_file}
        card = build_model_card(network_opt, args.scale, args.output, extra=source)
        print(f'wrote {write_model_card(card, args.output, rules)}')
    except (UserError, OSError) as error:  # OSError: a folder that cannot be written, a full disk
        return error_status(error)
    return 0


if __name__ == '__main__':
    sys.exit(main())
