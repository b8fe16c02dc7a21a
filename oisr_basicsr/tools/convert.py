"""Convert an OISR checkpoint released by the authors (HolmesShuan/OISR-PyTorch) for this package: the work of
``oisr convert``, whose command line and help are :mod:`oisr_cli.commands.convert`."""

import argparse
import os
import sys

from ..archs.oisr_arch import PAPER_MODELS
from ..checkpoints.conversion import conversion_rules, convert_checkpoint
from ..errors import UserError, error_status
from ..outputs import check_output_path
from .model_card import build_model_card, model_card_path, sha256_of, write_model_card

AUTHORS_REPOSITORY = 'https://github.com/HolmesShuan/OISR-PyTorch'


def run(args: argparse.Namespace) -> int:
    """Convert (the command line of ``oisr convert``: :mod:`oisr_cli.commands.convert`); returns the exit status."""
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
    from oisr_cli.commands.convert import main  # the command line is the `oisr` command's

    sys.exit(main())
