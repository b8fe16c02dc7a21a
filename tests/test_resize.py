"""The package's resize module: BasicSR's MATLAB bicubic reproduced batched, and NODE-SR's I(t) built on it."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from conftest import smooth_image

from oisr_basicsr.data.continuous_scale_dataset import DEFAULT_SCALES
from oisr_basicsr.data.resize import (
    exact_scale,
    imresize,
    imresize_tensor,
    imresize_uint8,
    progressive_input,
    upscale_lr,
)

UP_SCALES = (1.1, 1.3, 1.5, 2.0, 2.5, 3.0, 3.3, 3.7, 4.0)
DOWN_SCALES = tuple(1 / t for t in UP_SCALES)
TOLERANCE = 1e-4


def random_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.parametrize('scale', UP_SCALES + DOWN_SCALES)
@pytest.mark.parametrize('shape', [(37, 51, 3), (64, 45), (129, 77, 1)])
def test_numpy_matches_basicsr(shape, scale):
    img = random_image(shape)
    expected = basicsr_imresize(img, scale)
    out = imresize(img, scale)
    assert out.shape == expected.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=TOLERANCE, rtol=0)


def test_torch_batch_matches_basicsr_per_image():
    batch = torch.from_numpy(random_image((5, 3, 43, 58), seed=1))
    for scale in (1 / 3.7, 1 / 1.1, 1.1, 2.5, 4.0):
        out = imresize(batch, scale)
        expected = torch.stack([basicsr_imresize(image, scale) for image in batch])
        assert out.shape == expected.shape and out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=TOLERANCE, rtol=0)
        # A single CxHxW image goes through the same path as a batch of one.
        torch.testing.assert_close(imresize(batch[2], scale), out[2], atol=1e-6, rtol=0)
        torch.testing.assert_close(imresize_tensor(batch, scale), out)


def test_float64_and_half_keep_their_dtype():
    img = random_image((40, 30, 3), seed=2)
    np.testing.assert_allclose(imresize(img.astype(np.float64), 0.4), basicsr_imresize(img, 0.4), atol=TOLERANCE)
    assert imresize(img.astype(np.float64), 0.4).dtype == np.float64
    half = torch.from_numpy(img).permute(2, 0, 1).half()
    out = imresize(half, 2.5)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), basicsr_imresize(half.float(), 2.5), atol=2e-3, rtol=0)


@pytest.mark.parametrize('scale', [1.1, 2.5, 1 / 3.7])
def test_explicit_size_is_a_top_left_crop_of_the_matlab_output(scale):
    img = random_image((50, 41, 3), seed=3)
    full = basicsr_imresize(img, scale)
    out = imresize(img, scale, size=(full.shape[0] - 1, full.shape[1] - 2))
    np.testing.assert_allclose(out, full[:-1, :-2], atol=TOLERANCE)


def test_imresize_uint8_takes_a_size():
    img = (random_image((46, 43, 3), seed=4) * 255).astype(np.uint8)
    out = imresize_uint8(img, 1 / 1.5, size=(31, 29))
    assert out.dtype == np.uint8 and out.shape == (31, 29, 3)
    expected = np.clip(np.round(basicsr_imresize(img / 255., 1 / 1.5) * 255), 0, 255)
    assert expected.shape == (31, 29, 3)
    assert np.abs(out - expected).max() <= 1 and (out != expected).mean() < 1e-3


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='scale must be a positive number'):
        imresize(random_image((8, 8)), 0)
    with pytest.raises(ValueError, match='NxCxHxW'):
        imresize(torch.zeros(2, 2, 3, 8, 8), 2)
    with pytest.raises(ValueError, match='output size must be positive'):
        imresize(random_image((8, 8)), 2, size=(0, 4))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_gpu_matches_cpu():
    batch = torch.from_numpy(random_image((4, 3, 61, 47), seed=5))
    for scale in (1 / 3.7, 2.5):
        torch.testing.assert_close(imresize(batch.cuda(), scale).cpu(), imresize(batch, scale), atol=1e-5, rtol=0)
    scales = torch.tensor([1.1, 3.7, 1.0, 2.5])
    torch.testing.assert_close(progressive_input(batch.cuda(), scales.cuda()).cpu(), progressive_input(batch, scales),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize('size', [37, 51, 129])
def test_progressive_input_keeps_the_patch_size_for_every_training_scale(size):
    hr = torch.from_numpy(random_image((2, 3, size, size + 2), seed=size))
    for t in DEFAULT_SCALES:
        out = progressive_input(hr, t)
        assert out.shape == hr.shape, t
        assert torch.isfinite(out).all()


def test_progressive_input_at_one_is_hr():
    hr = torch.from_numpy(random_image((3, 3, 37, 40), seed=6))
    assert torch.equal(progressive_input(hr, 1.0), hr)
    mixed = progressive_input(hr, torch.tensor([1.0, 2.5, 1.0]))
    assert torch.equal(mixed[0], hr[0]) and torch.equal(mixed[2], hr[2])
    assert not torch.allclose(mixed[1], hr[1], atol=1e-3)


def test_per_sample_scales_equal_separate_calls():
    hr = torch.from_numpy(random_image((4, 3, 51, 37), seed=7))
    scales = torch.tensor([3.7, 1.1, 3.7, 2.0])  # float32, as a DataLoader delivers them
    out = progressive_input(hr, scales)
    for index, t in enumerate((3.7, 1.1, 3.7, 2.0)):
        torch.testing.assert_close(out[index:index + 1], progressive_input(hr[index:index + 1], t), atol=1e-6, rtol=0)


def basicsr_progressive(hr: np.ndarray, t: float) -> np.ndarray:
    """BasicSR's MATLAB bicubic down by 1/t, 8 bits, up by t; exact for sides that are multiples of t's numerator."""
    lr = np.round(np.clip(basicsr_imresize(hr, 1 / t), 0, 1) * 255) / 255.
    return basicsr_imresize(lr.astype(np.float32), t)


def assert_equal_but_for_rare_rounding(out: torch.Tensor, expected: torch.Tensor) -> None:
    # A few LR values may round the other way where float error meets a .5 boundary; each moves I(t) by < 1/255.
    difference = (out - expected).abs()
    assert difference.max() < 1 / 255 and (difference > TOLERANCE).float().mean() < 0.01


@pytest.mark.parametrize('t, size', [(2.0, 64), (1.5, 66), (4.0, 48)])
def test_progressive_input_without_padding_is_basicsr_down_quantise_up(t, size):
    hr = smooth_image(np.random.default_rng(8), size, size).astype(np.float32) / 255.
    out = progressive_input(torch.from_numpy(hr).permute(2, 0, 1)[None], t)[0]
    assert_equal_but_for_rare_rounding(out, torch.from_numpy(basicsr_progressive(hr, t)).permute(2, 0, 1))


@pytest.mark.parametrize('t', DEFAULT_SCALES)
def test_padded_progressive_input_is_pixel_aligned(t):
    # A patch padded to a multiple of p (t = p/q) gets an LR grid that starts `before` pixels above and left of it.
    # Embedded in a larger image at that grid's phase (offset before + k * p), the same LR pixels arise from the
    # larger image without any padding; away from the patch border, where the padding cannot reach, I(t) of the
    # patch must then equal the crop of the larger image's I(t), computed independently with BasicSR. Any
    # sub-pixel shift or misplaced crop would break the equality.
    size, p = 51, exact_scale(t).numerator
    before = (-(-size // p) * p - size) // 2
    offset = before + p
    side = -(-(offset + size + p) // p) * p
    big = smooth_image(np.random.default_rng(11), side, side).astype(np.float32) / 255.
    window = slice(offset, offset + size)
    expected = torch.from_numpy(basicsr_progressive(big, t)).permute(2, 0, 1)[:, window, window]
    patch = torch.from_numpy(big[window, window]).permute(2, 0, 1)[None]
    out = progressive_input(patch, t)[0]
    margin = math.ceil(4 * t) + 2
    interior = slice(margin, size - margin)
    assert_equal_but_for_rare_rounding(out[:, interior, interior], expected[:, interior, interior])


@pytest.mark.parametrize('t', [1.1, 1.7, 2.5, 3.7, 4.0])
def test_progressive_input_is_close_to_hr_and_a_shift_is_clearly_worse(t):
    hr = torch.from_numpy(smooth_image(np.random.default_rng(9), 129, 129)).permute(2, 0, 1)[None].float() / 255.
    out = progressive_input(hr, t)
    crop = slice(4, -4)
    aligned = psnr(out[..., crop, crop], hr[..., crop, crop])
    shifted = max(psnr(torch.roll(out, shift, dim)[..., crop, crop], hr[..., crop, crop])
                  for shift in (1, -1) for dim in (-1, -2))
    assert aligned > 30
    assert aligned > shifted + 5


def test_progressive_input_refuses_scales_it_cannot_pad_for():
    hr = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match='2.34567 is not a fraction'):
        progressive_input(hr, 2.34567)
    with pytest.raises(ValueError, match='scale must be a number >= 1, got 0.5'):
        progressive_input(hr, 0.5)
    with pytest.raises(ValueError, match='3 values for a batch of 1'):
        progressive_input(hr, torch.tensor([2.0, 2.0, 2.0]))


def test_upscale_lr_is_the_matlab_upscale_cropped_top_left():
    lr = torch.from_numpy(random_image((2, 3, 29, 31), seed=10))
    out = upscale_lr(lr, 1.1)
    assert out.shape[-2:] == (31, 34)  # int(29 * 1.1) = 31 (31.9), int(31 * 1.1) = 34 (34.1)
    expected = torch.stack([basicsr_imresize(image, 1.1) for image in lr])
    torch.testing.assert_close(out, expected[..., :31, :34], atol=TOLERANCE, rtol=0)
    same = upscale_lr(lr, torch.tensor([1.1, 1.1]), size=(30, 30))
    torch.testing.assert_close(same, out[..., :30, :30], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match='one scale for the whole batch'):
        upscale_lr(lr, torch.tensor([1.1, 2.0]))


def test_exact_scale_recovers_decimal_scales():
    assert exact_scale(3.7) == exact_scale(float(torch.tensor(3.7))) == exact_scale(37 / 10)
    assert exact_scale(3.7).numerator == 37
    assert exact_scale(1 / 1.1) == Fraction(10, 11)
    assert math.floor(45 * exact_scale(1.4)) == 63  # int(45 * 1.4) is 62: the product is 62.99999999999999
    assert math.floor(45 * exact_scale(float(torch.tensor(1.4)))) == 63
    assert exact_scale(2.0001234) == Fraction(2.0001234)  # no simple fraction: the float's own value
