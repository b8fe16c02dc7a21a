"""Set-up shared by the benchmark scripts in ``scripts/``."""

import torch


def prepare_benchmark_device(name: str, threads: int) -> str:
    """Set up the device a benchmark runs on; returns its description for the printed header.

    Args:
        name: A torch device name, e.g. ``cpu`` or ``cuda``.
        threads: Torch CPU threads for the process.

    Returns:
        The GPU's name, or the CPU and its thread count.
    """
    torch.set_num_threads(threads)
    device = torch.device(name)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as BasicSR's training and test scripts run
        return torch.cuda.get_device_name(device)
    return f'CPU, {threads} thread(s)'
