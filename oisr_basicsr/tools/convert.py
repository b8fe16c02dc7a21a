"""Convert an OISR checkpoint released by the authors (HolmesShuan/OISR-PyTorch) for this package: the work of
``oisr convert``, whose command line and help are :mod:`oisr_cli.commands.convert`."""

import argparse
import os
import sys

from ..archs.oisr_arch import PAPER_MODELS
from ..checkpoints.card import build_model_card, sha256_of, write_model_card
from ..checkpoints.conversion import convert_checkpoint
from ..errors import CheckpointError, error_status

AUTHORS_REPOSITORY = 'https://github.com/HolmesShuan/OISR-PyTorch'


def run(args: argparse.Namespace) -> int:
    """Convert (the command line of ``oisr convert``: :mod:`oisr_cli.commands.convert`); returns the exit status."""
    try:
        count = convert_checkpoint(args.input, args.output, args.model, args.scale)
    except (CheckpointError, OSError) as error:
        return error_status(error)
    option_file = f'options/test_OISR_{args.model.replace("-", "_")}_x{args.scale}.yml'
    print(f'wrote {args.output} ({count} tensors) for the network of {option_file}')
    network_opt = {'type': 'OISR', **PAPER_MODELS[args.model], 'upscale': args.scale}
    source = {'convertedFrom': {'file': os.path.basename(args.input), 'sha256': sha256_of(args.input),
                                'origin': f"the authors' release ({AUTHORS_REPOSITORY})"},
              'optionFile': option_file}
    card = build_model_card(network_opt, args.scale, args.output, extra=source)
    print(f'wrote {write_model_card(card, args.output)}')
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.convert import main  # the command line is the `oisr` command's

    sys.exit(main())
