"""Set-up shared by the benchmarks of this folder: the device and how the CPU allocator keeps freed memory."""

import ctypes
import ctypes.util

import torch

# mallopt(3) parameters of glibc's malloc.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


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


def keep_freed_cpu_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process for reuse, as CUDA's caching allocator does.

    By default glibc serves large blocks with ``mmap`` and gives freed memory back to the operating system
    (unmapping those blocks, trimming the top of its heap) by thresholds it adapts as the process runs. A
    training step frees and allocates the same feature maps every iteration, so memory given back is asked
    for again at once, and every 4 KiB page of it is faulted in and zeroed by the kernel again. How much
    depends on the order and sizes of the allocations, so two networks doing the same arithmetic can pay
    very different amounts, and the amount changes from run to run (``docs/benchmarks.md``). With ``mmap``
    off and trimming off the heap grows to the peak once and is reused; nothing else in the process changes.

    Returns:
        True if glibc took both settings; False where the C library is not glibc (nothing changed then).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Trimming first: from then on no freed memory leaves the heap, whatever happens to the second call.
    return bool(mallopt(_M_TRIM_THRESHOLD, -1)) and bool(mallopt(_M_MMAP_MAX, 0))
