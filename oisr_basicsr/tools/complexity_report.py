"""Parameters and MACs of the generator (``network_g``) of any BasicSR option file.

    oisr complexity -opt options/train_OISR_RK3_x4.yml [--height 720 --width 1280]

MACs are counted the way the OISR and EDSR papers count them (conv weights times output pixels) for an HR
output of the given size; the network is built on the meta device, so even OISR-RK3 takes no memory.
"""

import math
import sys
from pathlib import Path

from ..checkpoints.loading import load_option_file, option_scale
from ..complexity import MACS_OUTPUT_SIZE, network_complexity
from ..errors import OptionError, error_status
from .arguments import ArgumentParser, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog='oisr complexity', description=__doc__)
    parser.add_argument('-opt', required=True, type=Path, help='BasicSR option YAML file')
    parser.add_argument('--height', type=positive_int, default=MACS_OUTPUT_SIZE[0],
                        help=f'HR output height (default {MACS_OUTPUT_SIZE[0]})')
    parser.add_argument('--width', type=positive_int, default=MACS_OUTPUT_SIZE[1],
                        help=f'HR output width (default {MACS_OUTPUT_SIZE[1]})')
    args = parser.parse_args(argv)
    try:
        opt = load_option_file(args.opt)
        network_opt, scale = opt['network_g'], option_scale(opt)
    except OptionError as error:
        return error_status(error)
    counts = network_complexity(network_opt, scale, (args.height, args.width))
    lr_height, lr_width = math.ceil(args.height / scale), math.ceil(args.width / scale)
    print(f'network_g: {network_opt["type"]}, x{scale}, {args.width}x{args.height} output '
          f'({lr_width}x{lr_height} input)')
    print(f'parameters: {counts["params"]:,}')
    print(f'conv parameters: {counts["conv_params"]:,}')
    print(f'MACs: {counts["macs"] / 1e9:.1f} G ({counts["macs"]:,})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
