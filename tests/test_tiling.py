"""oisr_basicsr.inference.tiling: tiles cover the image exactly, and tiled inference equals untiled inference."""

import pytest
import torch

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.inference.tiling import tile_spans, tiled_forward


@pytest.fixture
def one_thread():
    # Tiny convolutions on a busy machine spend most of their time synchronising threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('length, tile, overlap', [(61, 24, 10), (45, 24, 10), (10, 24, 10), (100, 7, 3), (25, 24, 0)])
def test_cores_partition_the_axis_and_keep_their_context(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    cores = [(start, end) for _, _, start, end in spans]
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(cores, cores[1:], strict=False))
    for window_start, window_end, core_start, core_end in spans:
        assert window_end - window_start == min(tile, length)
        assert window_start == 0 or core_start - window_start >= overlap
        assert window_end == length or window_end - core_end >= overlap


def test_rejects_a_tile_without_a_core():
    with pytest.raises(ValueError, match='twice the tile overlap'):
        tile_spans(50, 20, 10)


def _small_oisr() -> OISR:
    torch.manual_seed(0)
    # Receptive-field radius in LR pixels: conv_first 1, LF block 4, conv_after_body 1, upsampler conv 1,
    # conv_last 1 (half an LR pixel, rounded up): 8.
    return OISR(num_feat=8, num_block=1, upscale=2, scheme='lf', g_variant='v2').eval()


@pytest.mark.parametrize('overlap', [8, 10])
def test_tiled_equals_untiled_from_the_receptive_field_radius_on(one_thread, overlap):
    net = _small_oisr()
    lq = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = net(lq)
        tiled = tiled_forward(net, lq, scale=2, tile=24, overlap=overlap)
    assert len(tile_spans(45, 24, overlap)) * len(tile_spans(61, 24, overlap)) >= 6
    # Every kept pixel saw all of its input: equal up to the summation order of the tile-sized convolutions.
    assert (tiled - full).abs().max().item() < 1e-6


@pytest.mark.parametrize(('overlap', 'least_difference'), [(7, 1e-4), (2, 1e-2)])
def test_less_overlap_than_the_radius_shows_seams(one_thread, overlap, least_difference):
    # The same comparison must be able to fail: with an overlap below the receptive-field radius the
    # tiles' borders see zero padding instead of their neighbours, one pixel short already.
    net = _small_oisr()
    lq = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = net(lq)
        tiled = tiled_forward(net, lq, scale=2, tile=24, overlap=overlap)
    assert (tiled - full).abs().max().item() > least_difference


def test_wrong_scale_is_reported():
    with pytest.raises(ValueError, match='is the scale 3 right'):
        tiled_forward(_small_oisr(), torch.rand(1, 3, 20, 20), scale=3, tile=16, overlap=2)
