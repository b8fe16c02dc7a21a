"""Peak tensor memory of a piece of work, on any device, and at sizes that would not fit in memory.

On CUDA the caching allocator's own statistics are the measure. Elsewhere
:class:`TensorMemoryTracker` counts the bytes of the tensor storages that the
operators create, as the allocator would hold them, and frees them when their
last reference dies. Run under :class:`torch._subclasses.fake_tensor.FakeTensorMode`
the same count needs neither memory nor compute, so the peak of a training step
at a GPU-sized batch can be read on a laptop; it is the tensors' memory alone
(no allocator rounding or fragmentation, no cuDNN workspaces).
"""

import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class TensorMemoryTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages created while the tracker is active.

    Tensors that exist before it starts (parameters, inputs) are not counted;
    views share their base's storage and are counted once. The backward pass is
    tracked too: autograd carries the active dispatch mode into its engine.

    Attributes:
        live_bytes: Bytes of the tracked storages still alive.
        peak_bytes: The largest ``live_bytes`` seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._tracked: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._track(value.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        # PyTorch keeps one Python object per storage for as long as the storage lives, so its id is a key and
        # its finalizer runs exactly when the memory is released.
        key = id(storage)
        if key in self._tracked:
            return
        size = storage.nbytes()
        self._tracked.add(key)
        self.live_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(storage, self._release, key, size)

    def _release(self, key: int, size: int) -> None:
        self._tracked.discard(key)
        self.live_bytes -= size


def peak_memory(work: Callable[[], object], device: torch.device | str = 'cpu') -> int:
    """Peak bytes of the tensor memory that ``work()`` allocates on top of what already exists.

    Args:
        work: The computation, e.g. one training step. Its return value is dropped before the call returns.
        device: Where it runs: on CUDA the allocator's peak (``torch.cuda.max_memory_allocated``), elsewhere
            :class:`TensorMemoryTracker`.

    Returns:
        The peak, in bytes.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        work()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - baseline
    with TensorMemoryTracker() as tracker:
        work()
    return tracker.peak_bytes


def available_host_memory() -> int | None:
    """Bytes of memory the system can still give without swapping (Linux ``MemAvailable``); None where unknown."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
