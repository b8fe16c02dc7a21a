"""Parameters and MACs of the generator (``network_g``) of any BasicSR option file.

    python scripts/model_complexity.py -opt options/train_OISR_RK3_x4.yml [--height 720 --width 1280]

MACs are counted the way the OISR and EDSR papers count them (conv weights times output pixels) for an HR
output of the given size; the network is built on the meta device, so even OISR-RK3 takes no memory.
"""

import argparse
import math
import sys
from pathlib import Path

import yaml

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch and registers the OISR archs)

# isort: split
# BasicSR 1.4.2 only imports after the patches above, so this block must stay below them.
from basicsr.utils.options import ordered_yaml

from oisr_basicsr.utils.complexity import network_complexity


class UsageError(Exception):
    """An option file this script cannot measure; reported as ``error: ...`` with exit status 2."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} is not a positive integer')
    return value


def load_network_options(path: Path) -> tuple[dict, int]:
    """``network_g`` and the scale of the option file at ``path``."""
    if not path.is_file():
        raise UsageError(f'option file not found: {path}')
    loader, _ = ordered_yaml()
    try:
        with path.open(encoding='utf-8') as file:
            opt = yaml.load(file, Loader=loader)
    except yaml.YAMLError as error:
        raise UsageError(f'{path} is not valid YAML: {error}') from None
    network_opt = opt.get('network_g') if isinstance(opt, dict) else None
    if not isinstance(network_opt, dict):
        raise UsageError(f'{path} has no network_g section')
    if 'type' not in network_opt:
        raise UsageError(f'{path}: network_g has no type')
    # BasicSR keeps the scale at the top level; a bare network section may carry it as upscale or scale.
    candidates = (opt.get('scale'), network_opt.get('upscale'), network_opt.get('scale'))
    scale = next((value for value in candidates if value is not None), None)
    if scale is None:
        raise UsageError(f'{path}: no scale; set the top-level scale or network_g.upscale')
    if not isinstance(scale, int) or scale < 1:
        raise UsageError(f'{path}: scale {scale!r} is not a positive integer')
    return dict(network_opt), scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', required=True, type=Path, help='BasicSR option YAML file')
    parser.add_argument('--height', type=positive_int, default=720, help='HR output height (default 720)')
    parser.add_argument('--width', type=positive_int, default=1280, help='HR output width (default 1280)')
    args = parser.parse_args(argv)
    try:
        network_opt, scale = load_network_options(args.opt)
        try:
            counts = network_complexity(network_opt, scale, (args.height, args.width))
        except (KeyError, TypeError, ValueError) as error:
            # Unknown type (registry KeyError), unknown keyword (TypeError) or a value the arch rejects.
            raise UsageError(f'network_g ({network_opt["type"]}) cannot be built: {error}') from None
    except UsageError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    lr_height, lr_width = math.ceil(args.height / scale), math.ceil(args.width / scale)
    print(f'network_g: {network_opt["type"]}, x{scale}, {args.width}x{args.height} output '
          f'({lr_width}x{lr_height} input)')
    print(f'parameters: {counts["params"]:,}')
    print(f'conv parameters: {counts["conv_params"]:,}')
    print(f'MACs: {counts["macs"] / 1e9:.1f} G ({counts["macs"]:,})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
