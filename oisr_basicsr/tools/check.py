"""Every check a run makes at start, without the run: the work of ``oisr check``, whose command line and help are
:mod:`oisr_cli.commands.check`."""

import argparse
import os
import sys
from collections.abc import Mapping

from ..complexity import MACS_OUTPUT_SIZE, count_parameters, meta_network, network_complexity
from ..errors import report_user_errors
from ..inference.loading import option_scale
from ..memory import format_bytes
from ..model_capabilities import serves_any_scale
from ..models.nodesr import NODESR
from ..options import read_option_file
from ..run_lock import check_run_folders_free, run_folders
from ..startup import CheckedDataset, start_up_checks

# The scale a NODE-SR model's MACs are given for: the cost of a solve grows as its start time moves from 1.
ANY_SCALE_SHOWN = 2


def is_training_file(option_file: str) -> bool:
    """Whether ``option_file`` is run by ``oisr train`` (it has a ``train:`` block) rather than by ``oisr test``."""
    return 'train' in read_option_file(option_file)


def network_summary(opt: Mapping) -> str:
    """``network_g``: its type, scale, parameters and MACs for a :data:`MACS_OUTPUT_SIZE` output (as
    ``oisr complexity`` and ``oisr compare`` count them; for NODE-SR, one solve's at :data:`ANY_SCALE_SHOWN`)."""
    network_opt = opt['network_g']
    net = meta_network(network_opt)
    params = count_parameters(net)['params']
    size = f'{MACS_OUTPUT_SIZE[1]}x{MACS_OUTPUT_SIZE[0]} output'
    if serves_any_scale(opt):
        try:
            nodesr = NODESR.from_options(net, opt, ANY_SCALE_SHOWN)
            cost = f'{nodesr.macs(MACS_OUTPUT_SIZE, network_opt.get("num_in_ch", 3)) / 1e9:.1f} G MACs'
        except ValueError:  # an adaptive solver: its number of network evaluations depends on the image
            cost = 'MACs that depend on the image (adaptive solver)'
        return (f'network_g: {network_opt["type"]} (any scale), {params:,} parameters, {cost} per '
                f'x{ANY_SCALE_SHOWN} solve for a {size}')
    scale = option_scale(opt)
    if params == 0:  # Bicubic: nothing the MAC count counts
        return f'network_g: {network_opt["type"]} x{scale}, no parameters'
    macs = network_complexity(network_opt, scale, MACS_OUTPUT_SIZE)['macs']
    return f'network_g: {network_opt["type"]} x{scale}, {params:,} parameters, {macs / 1e9:.1f} G MACs for a {size}'


def dataset_summary(phase: str, dataset: CheckedDataset) -> list[str]:
    """The lines of one dataset: its type, image count and sizes per root, and its largest result's memory."""
    if not dataset.sizes:
        return [f'datasets.{phase}: {dataset.type}, images not read at start']
    parts = []
    for root, sizes in dataset.sizes.items():
        smallest = min(sizes.values(), key=lambda hw: hw[0] * hw[1])
        largest = max(sizes.values(), key=lambda hw: hw[0] * hw[1])
        extent = f'{smallest[1]}x{smallest[0]}' + ('' if smallest == largest else f' to {largest[1]}x{largest[0]}')
        parts.append(f'{root.removeprefix("dataroot_").upper()} {len(sizes)} images, {extent}')
    lines = [f'datasets.{phase}: {dataset.type}, {"; ".join(parts)}']
    if dataset.largest_result is not None:
        result = dataset.largest_result
        memory = ', '.join(f'{format_bytes(needed)} of {"memory" if where.type == "cpu" else f"{where} memory"}'
                           for where, needed in result.memory.items())
        lines.append(f'  largest result: {result.image}, {result.output_hw[1]}x{result.output_hw[0]}, needs about '
                     f'{memory}')
    return lines


def run(args: argparse.Namespace) -> int:
    """Check ``args.opt`` as ``oisr train`` (a file with ``train:``) or ``oisr test`` would start it, create nothing,
    and print a summary; the same ``error:`` line as the run and exit status 2 for what would stop it.

    Args:
        args: The parsed command line of ``oisr check`` (:mod:`oisr_cli.commands.check`).
    """
    with report_user_errors():
        is_train = is_training_file(args.opt) if args.mode is None else args.mode == 'train'
        opt, _, checked = start_up_checks(os.getcwd(), is_train, args)
        check_run_folders_free(opt)
        network = network_summary(opt) if isinstance(opt.get('network_g'), dict) else 'no network_g'
    lines = [f'model: {opt["model_type"]}; {network}']
    for phase, dataset in checked.items():
        lines += dataset_summary(phase, dataset)
    lines += [f'{os.path.relpath(folder)}: free (no other run holds it)' for folder in run_folders(opt)]
    lines.append(f'ok: {args.opt} is ready for oisr {"train" if is_train else "test"}; nothing was created')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    from oisr_cli.commands.check import main  # the command line is the `oisr` command's

    sys.exit(main())
