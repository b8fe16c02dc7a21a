"""Peak tensor memory: exact counts, views counted once, and fake tensors counting as real ones do."""

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from oisr_basicsr.memory import TensorMemoryTracker, peak_memory


def test_peak_counts_live_storages_exactly():
    def work():
        a = torch.empty(1000)  # 4000 bytes
        b = a * 2  # 8000 live
        del b  # 4000 live
        c = torch.empty(2000)  # 12000 live: the peak
        view = c[:10]  # shares c's storage: no new bytes
        return view

    assert peak_memory(work) == 12000


def test_tensors_made_before_tracking_are_not_counted_and_frees_are_seen():
    existing = torch.ones(10_000)
    with TensorMemoryTracker() as tracker:
        doubled = existing * 2
        assert tracker.live_bytes == 40_000
        del doubled
        assert tracker.live_bytes == 0
    assert tracker.peak_bytes == 40_000


def _training_step(net: nn.Module, x: torch.Tensor):
    def step():
        net.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
    return step


def _small_network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(16), nn.Conv2d(16, 3, 3, padding=1))


def test_fake_tensors_give_the_peak_of_the_real_run():
    torch.manual_seed(0)
    real = _training_step(_small_network(), torch.rand(2, 3, 40, 40))
    with FakeTensorMode():
        fake = _training_step(_small_network(), torch.empty(2, 3, 40, 40))
        fake_peak = peak_memory(fake)
    real_peak = peak_memory(real)
    # Conv output, PReLU output, second conv output, gradients of the activations and of the parameters.
    assert real_peak > 3 * 2 * 16 * 40 * 40 * 4
    assert fake_peak == real_peak


def test_no_grad_forward_peak_is_its_largest_pair_of_activations():
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 8, 3, padding=1)).eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        peak = peak_memory(lambda: net(x))
    # The 32-channel map and the 8-channel output are alive together while the second conv runs.
    assert peak == (32 + 8) * 20 * 20 * 4
