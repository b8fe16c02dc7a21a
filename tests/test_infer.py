"""oisr infer: own images in, PNGs of the right size and content out, clear errors."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import smooth_image

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_cli.commands.infer import main

NETWORK = {'type': 'OISR', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'rk2', 'g_variant': 'v3'}



@pytest.fixture
def model(tmp_path):
    """A random OISR saved as an EMA-only BasicSR checkpoint with DataParallel's prefix, and its option file."""
    torch.manual_seed(0)
    kwargs = {k: v for k, v in NETWORK.items() if k != 'type'}
    net = OISR(**kwargs).eval()
    weights = tmp_path / 'net_g.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in net.state_dict().items()}}, weights)
    option_file = tmp_path / 'test.yml'
    option_file.write_text(yaml.safe_dump({'name': 'tiny', 'model_type': 'SRModel', 'scale': 2, 'network_g': NETWORK,
                                           'path': {'pretrain_network_g': str(weights)}}))
    return net, option_file


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(0)
    color = smooth_image(rng, 20, 26)
    cv2.imwrite(str(folder / 'color.jpg'), color, [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(folder / 'gray.png'), smooth_image(rng, 15, 17)[..., 0])
    alpha = np.tile(np.linspace(0, 255, 14, dtype=np.uint8), (12, 1))
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([smooth_image(rng, 12, 14), alpha]))
    (folder / 'notes.txt').write_text('not an image, and not an image extension: skipped')
    return folder


def _expected(net: OISR, bgr: np.ndarray) -> np.ndarray:
    max_value = np.iinfo(bgr.dtype).max
    lq = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / max_value).permute(2, 0, 1)[None]
    with torch.inference_mode():
        sr = net(lq).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return np.round(sr[..., ::-1] * max_value).astype(bgr.dtype)


def assert_equal_but_rare_roundings(image: np.ndarray, expected: np.ndarray) -> None:
    difference = np.abs(image.astype(int) - expected)
    assert difference.max() <= 1 and np.count_nonzero(difference) <= max(1, difference.size // 1000)


def test_cli_super_resolves_a_folder(tmp_path, model, images):
    net, option_file = model
    output = tmp_path / 'sr'
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'infer', '-opt', str(option_file), '--input',
                             str(images), '--output', str(output), '--device', 'cpu', '--tile', '17',
                             '--tile-overlap', '8'], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in output.iterdir()) == ['color.png', 'gray.png', 'rgba.png']

    color_in = cv2.imread(str(images / 'color.jpg'))
    color = cv2.imread(str(output / 'color.png'), cv2.IMREAD_UNCHANGED)
    assert color.shape == (40, 52, 3)
    # Tiled (17-pixel windows, overlap 8 = the receptive-field radius: conv_first 1, the RK2 block's two G-v3
    # 4, conv_after_body 1, upsampler conv 1, conv_last 1) and untiled agree to float rounding (1e-7, see
    # tests/test_tiling.py), which may flip the odd 8-bit rounding; one pixel short of the radius flips many.
    assert_equal_but_rare_roundings(color, _expected(net, color_in))

    gray_in = cv2.imread(str(images / 'gray.png'), cv2.IMREAD_UNCHANGED)
    gray = cv2.imread(str(output / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (30, 34)  # still single-channel
    expected_gray = cv2.cvtColor(_expected(net, cv2.cvtColor(gray_in, cv2.COLOR_GRAY2BGR)), cv2.COLOR_BGR2GRAY)
    assert_equal_but_rare_roundings(gray, expected_gray)

    rgba_in = cv2.imread(str(images / 'rgba.png'), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(output / 'rgba.png'), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (24, 28, 4)
    assert np.array_equal(rgba[..., 3], cv2.resize(rgba_in[..., 3], (28, 24), interpolation=cv2.INTER_CUBIC))
    assert_equal_but_rare_roundings(rgba[..., :3], _expected(net, rgba_in[..., :3]))


def test_unreadable_image_is_named(tmp_path, model, images, capsys, one_thread):
    _, option_file = model
    broken = images / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    assert main(['-opt', str(option_file), '-i', str(images), '-o', str(tmp_path / 'sr'), '--no-progress']) == 2
    assert f'error: {broken}: not a readable image (' in capsys.readouterr().err


def test_missing_or_empty_input_is_named(tmp_path, model, capsys):
    _, option_file = model
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('not an image')
    for name, problem in (('nowhere', 'does not exist'), ('empty', 'holds no images (.png .jpg')):
        assert main(['-opt', str(option_file), '-i', str(tmp_path / name), '-o', str(tmp_path / 'sr')]) == 2
        assert capsys.readouterr().err.startswith(f'error: input {tmp_path / name} {problem}')
    assert not (tmp_path / 'sr').exists()


@pytest.mark.parametrize('extra, message', [
    (['--precision', 'fp16', '--device', 'cpu'], 'fp16 needs a CUDA device'),
    (['--tile', '8', '--tile-overlap', '4'], 'must be larger than twice --tile-overlap'),
    (['--scale', '3'], 'upscales by 2 only'),
    (['--device', 'tpu:0'], 'is not a device'),
])
def test_bad_settings_fail_before_any_work(tmp_path, model, images, capsys, extra, message):
    _, option_file = model
    output = tmp_path / 'sr'
    assert main(['-opt', str(option_file), '-i', str(images), '-o', str(output), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_checkpoint_that_does_not_fit_lists_the_keys(tmp_path, model, images, capsys):
    _, option_file = model
    other = OISR(num_feat=8, num_block=1, upscale=2, scheme='lf', g_variant='v2')
    weights = tmp_path / 'other.pth'
    torch.save({'params': other.state_dict()}, weights)
    assert main(['-opt', str(option_file), '-i', str(images), '-o', str(tmp_path / 'sr'), '--weights',
                 str(weights)]) == 2
    err = capsys.readouterr().err
    assert f'{weights} does not fit network_g (OISR)' in err and 'unexpected keys: ' in err


def test_output_folder_may_not_overwrite_inputs(tmp_path, model, capsys):
    _, option_file = model
    folder = tmp_path / 'pngs'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), smooth_image(np.random.default_rng(0), 8, 8))
    assert main(['-opt', str(option_file), '-i', str(folder), '-o', str(folder)]) == 2
    assert 'is an input image' in capsys.readouterr().err


def test_bf16_on_the_cpu_stays_close_to_fp32(tmp_path, model, images, one_thread):
    net, option_file = model
    assert main(['-opt', str(option_file), '-i', str(images / 'color.jpg'), '-o', str(tmp_path / 'bf16'),
                 '--device', 'cpu', '--precision', 'bf16', '--no-progress']) == 0
    sr = cv2.imread(str(tmp_path / 'bf16' / 'color.png')).astype(int)
    expected = _expected(net, cv2.imread(str(images / 'color.jpg'))).astype(int)
    # Autocast really ran (fp32 would give exactly the expected image), and bfloat16's 8 mantissa bits cost a
    # fraction of a grey level on average.
    assert 0.05 < np.abs(sr - expected).mean() < 1


def test_16_bit_image_stays_16_bit(tmp_path, model, one_thread):
    net, option_file = model
    rng = np.random.default_rng(1)
    image = (smooth_image(rng, 12, 10).astype(np.uint16) * 257 + rng.integers(0, 257, (12, 10, 3))).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'deep.png'), image)
    assert main(['-opt', str(option_file), '-i', str(tmp_path / 'deep.png'), '-o', str(tmp_path / 'sr'),
                 '--no-progress']) == 0
    sr = cv2.imread(str(tmp_path / 'sr' / 'deep.png'), cv2.IMREAD_UNCHANGED)
    assert sr.dtype == np.uint16 and sr.shape == (24, 20, 3)
    # The network saw all 16 bits: rounded to 8 bits first, the result would differ by up to 128 levels.
    assert np.array_equal(sr, _expected(net, image))


def test_nodesr_option_file_super_resolves_by_any_factor(tmp_path, images, one_thread):
    from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
    from oisr_basicsr.data.resize import upscale_lr

    net = NODEVDSR(num_feat=4, num_layer=2)
    for param in net.parameters():
        torch.nn.init.zeros_(param)  # dI/dt = 0: the solution is I(t0), the bicubic upscale of the LR image
    weights = tmp_path / 'node.pth'
    torch.save({'params': net.state_dict()}, weights)
    option_file = tmp_path / 'node.yml'
    option_file.write_text(yaml.safe_dump({
        'name': 'tiny_node', 'model_type': 'NODESRModel', 'ode': {'solver': 'rk4', 'num_steps': 1},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
        'path': {'pretrain_network_g': str(weights)}}))
    output = tmp_path / 'sr'
    assert main(['-opt', str(option_file), '-i', str(images / 'color.jpg'), '-o', str(output), '--scale', '2.7',
                 '--device', 'cpu', '--no-progress']) == 0
    sr = cv2.imread(str(output / 'color.png'))
    assert sr.shape == (54, 70, 3)  # floor(20 * 2.7) x floor(26 * 2.7)
    color = cv2.imread(str(images / 'color.jpg'))
    lq = torch.from_numpy(np.ascontiguousarray(color[..., ::-1]).astype(np.float32) / 255).permute(2, 0, 1)[None]
    bicubic = upscale_lr(lq, 2.7).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(sr.astype(int) - np.round(bicubic[..., ::-1] * 255)).max() <= 1
    assert main(['-opt', str(option_file), '-i', str(images), '-o', str(output)]) == 2  # no --scale


def test_nodesr_intermediate_states_are_saved(tmp_path, images, one_thread):
    from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR

    net = NODEVDSR(num_feat=4, num_layer=2)
    for param in net.parameters():
        torch.nn.init.zeros_(param)  # every state equals I(t0)
    weights = tmp_path / 'node.pth'
    torch.save({'params': net.state_dict()}, weights)
    option_file = tmp_path / 'node.yml'
    option_file.write_text(yaml.safe_dump({
        'name': 'tiny_node', 'model_type': 'NODESRModel', 'ode': {'solver': 'euler', 'num_steps': 3},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
        'path': {'pretrain_network_g': str(weights)}}))
    output = tmp_path / 'sr'
    assert main(['-opt', str(option_file), '-i', str(images / 'color.jpg'), '-o', str(output), '--scale', '2.7',
                 '--device', 'cpu', '--no-progress', '--save-states']) == 0
    states = sorted(p.name for p in (output / 'states' / 'color').iterdir())
    # Three Euler steps from t0 = 2.7 down to 1: t = 2.7, 2.7 - 1.7/3, 2.7 - 3.4/3, 1.
    assert states == ['t1.000.png', 't1.567.png', 't2.133.png', 't2.700.png']
    final = cv2.imread(str(output / 'color.png'))
    for name in states:
        assert np.array_equal(cv2.imread(str(output / 'states' / 'color' / name)), final)


def test_save_states_needs_a_nodesr_model(tmp_path, images, capsys):
    option_file = tmp_path / 'oisr.yml'
    option_file.write_text(yaml.safe_dump({'name': 'x', 'model_type': 'SRModel', 'scale': 2,
                                           'network_g': {'type': 'Bicubic', 'upscale': 2}}))
    assert main(['-opt', str(option_file), '-i', str(images), '-o', str(tmp_path / 'o'), '--save-states']) == 2
    assert '--save-states needs a NODE-SR option file' in capsys.readouterr().err
