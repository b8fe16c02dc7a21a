"""Peak tensor memory of a piece of work, on any device, and at sizes that would not fit in memory.

On CUDA the caching allocator's own statistics are the measure. Elsewhere
:class:`TensorMemoryTracker` counts the bytes of the tensor storages that the
operators create, as the allocator would hold them, and frees them when their
last reference dies. Run under :class:`torch._subclasses.fake_tensor.FakeTensorMode`
the same count needs neither memory nor compute, so the peak of a training step
at a GPU-sized batch can be read on a laptop; it is the tensors' memory alone
(no allocator rounding or fragmentation, no cuDNN workspaces).

:func:`check_result_fits` refuses, before any work starts, an image whose result cannot fit: ``oisr infer`` and
the test pipeline (``oisr test``, validation during training) both ask it.
"""

import weakref
from collections.abc import Callable, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import InsufficientMemoryError
from .host_memory import available_host_memory, format_bytes

BYTES_PER_RESULT_VALUE = 4 + 1
"""Each value of a result: float32 as the network gives it, and the 8-bit value saved from it."""


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


def available_memory(device: torch.device | str) -> int | None:
    """Bytes ``device`` can still give: CUDA's free memory (``torch.cuda.mem_get_info``), else
    :func:`available_host_memory`; None where unknown."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    return available_host_memory()


def traced_forward_peak(make_forward: Callable[[], Callable[[torch.Tensor], torch.Tensor]],
                        input_shape: Sequence[int], device: torch.device | str = 'cpu') -> int | None:
    """Peak bytes of a forward pass without gradients on a float32 input of ``input_shape``, the input included,
    traced on fake tensors (no memory, no compute).

    Args:
        make_forward: Called under the fake-tensor mode; returns the forward. A network it builds gets fake weights;
            a real network it returns keeps its own, converted on the fly (weights existing before are not counted).
        input_shape: ``N x C x h x w``.
        device: Where the input lives (the network's device).

    Returns:
        The peak, or None where the forward cannot be traced this way: where an operator's result depends on the
        values, such as the step sizes an adaptive ODE solver chooses, fake tensors have none to give.
    """
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            forward = make_forward()
            lq = torch.empty(tuple(input_shape), device=device)
            with torch.no_grad():
                return lq.untyped_storage().nbytes() + peak_memory(lambda: forward(lq))
    except Exception:  # any operator may refuse fake tensors; the caller then counts the result alone
        return None


def check_result_fits(what: str, scale: float, output_hw: tuple[int, int], channels: int, device: torch.device | str,
                      network_peak: int | None, advice: str) -> dict[torch.device, int]:
    """Refuse, before the work starts, a result of ``output_hw`` pixels that cannot fit in memory.

    Each estimate is a lower bound of what the work holds at once:

    - the result: the float32 values and the 8-bit image made from them (:data:`BYTES_PER_RESULT_VALUE`), in host
      memory, where inference and BasicSR's ``tensor2img`` bring every result;
    - the network's part, on ``device``: ``network_peak`` (:func:`traced_forward_peak`: its input and every
      intermediate tensor; with tiles, one tile's) or, untraced, the float32 result alone, which the forward ends with.

    On the CPU both lie in one memory and the larger counts. Available memory is :func:`available_memory`; where it is
    unknown nothing is refused.

    Args:
        what: Names the image, e.g. ``datasets.test_1: Set5/HR/baby.png``.
        scale: Its upscaling factor, for the message.
        output_hw: The result's height and width.
        channels: The result's channels.
        device: The device the network runs on.
        network_peak: The traced peak of the network's part, or None.
        advice: What to do instead, ending the message.

    Returns:
        The estimate, in bytes, for each memory it needs (the host's, and the device's where it is another).

    Raises:
        InsufficientMemoryError: naming ``what``, the scale, the output size, the estimate and the available memory.
    """
    device = torch.device(device)
    host = torch.device('cpu')
    pixels = output_hw[0] * output_hw[1]
    network = network_peak if network_peak is not None else pixels * channels * 4
    needs = {host: (pixels * channels * BYTES_PER_RESULT_VALUE, False)}
    if device != host or network > needs[host][0]:
        needs[device] = (network, network_peak is not None)
    for where, (needed, traced) in needs.items():
        available = available_memory(where)
        if available is not None and needed > available:
            estimate = (f"an estimated {format_bytes(needed)} (the network's traced peak)" if traced
                        else f'at least {format_bytes(needed)}')
            memory = 'memory' if where == host else f'{where} memory'
            raise InsufficientMemoryError(
                f'{what}: at scale {scale:g} the result is {output_hw[1]}x{output_hw[0]} pixels, {estimate} of '
                f'{memory}, more than the {format_bytes(available)} available; {advice}')
    return {where: needed for where, (needed, _) in needs.items()}
