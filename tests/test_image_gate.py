"""The one reader of image files (:mod:`oisr_basicsr.images`): sizes from the header before any decoding, no size
exempt from the memory check, damaged files named."""

import csv
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import assert_one_line_error, smooth_image, tree_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_infer import model  # noqa: F401  (a fixture)

from oisr_basicsr import images
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.errors import ImageFileError, InsufficientMemoryError
from oisr_basicsr.images import IMAGE_SUFFIXES, check_image_decodes, read_image, read_image_header
from oisr_cli.commands.infer import main as infer_main
from oisr_cli.main import main as cli_main


def png_header_claiming(path: Path, width: int, height: int) -> None:
    """A small PNG file whose header announces ``width`` x ``height`` pixels (its data is that of a 1x1 image)."""
    buffer = io.BytesIO()
    Image.new('RGB', (1, 1)).save(buffer, format='PNG')
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack('>II', width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack('>I', zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))


@settings(max_examples=30, deadline=None)
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
def test_header_size_is_read_whatever_pil_thinks_of_it(width, height):
    limit = Image.MAX_IMAGE_PIXELS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / 'claims.png'
        png_header_claiming(path, width, height)
        header = read_image_header(path)
    assert (header.width, header.height, header.mode) == (width, height, 'RGB')
    assert Image.MAX_IMAGE_PIXELS == limit  # PIL's own limit is left as it was for everyone else


# What PIL writes for each suffix (the others are not written in that format).
WRITABLE = {'.png': ('L', 'LA', 'RGB', 'RGBA', 'I;16'), '.jpg': ('L', 'RGB'), '.bmp': ('L', 'RGB'),
            '.tiff': ('L', 'LA', 'RGB', 'RGBA', 'I;16'), '.webp': ('RGB', 'RGBA')}


def _random_pixels(mode: str, height: int, width: int, seed: int) -> np.ndarray:
    """Random values of PIL's ``mode``, in the array shape and type ``Image.fromarray`` writes in that mode."""
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    if mode == 'I;16':
        return rng.integers(0, 2**16, (height, width), dtype=np.uint16)
    return rng.integers(0, 256, (height, width, bands) if bands > 1 else (height, width), dtype=np.uint8)


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), height=st.integers(1, 9), width=st.integers(1, 9), seed=st.integers(0, 2**16),
       suffix=st.sampled_from(sorted(WRITABLE)), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_every_file_is_read_exactly_or_named(data, height, width, seed, suffix, cut):
    mode = data.draw(st.sampled_from(WRITABLE[suffix]))
    pixels = _random_pixels(mode, height, width, seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f'image{suffix}'
        Image.fromarray(pixels).save(path)  # the mode follows from the array's shape and type
        intact = _decoded(path)
        written = path.read_bytes()
        if cut is not None:
            path.write_bytes(written[:int(len(written) * cut)])
        try:
            header = read_image_header(path)
            check_image_decodes(header)
        except ImageFileError as error:
            assert cut is not None, error  # an intact file is always read
            assert str(error).startswith(f'{path}: ')
            return
        # Whatever is accepted is the whole image: its size, its layout and, decoded, its pixels.
        assert (header.height, header.width) == (height, width)
        assert header.mode == Image.open(path).mode
        np.testing.assert_array_equal(_decoded(path), intact)


LOSSLESS = ('.png', '.bmp', '.tiff')


def _exact(suffix: str, mode: str) -> bool:
    """Whether the gate gives back exactly the values written: lossless formats, except a TIFF with alpha, whose
    colour OpenCV (libtiff's RGBA reader, as BasicSR reads it too) premultiplies by the alpha."""
    return suffix in LOSSLESS and not (suffix == '.tiff' and mode in ('LA', 'RGBA'))


def _expected_layout(pixels: np.ndarray, mode: str) -> np.ndarray:
    """What the gate gives, unchanged, for ``pixels`` written in ``mode``: OpenCV's channel order (BGR, BGRA) and
    gray with alpha as its gray levels alone."""
    if mode == 'LA':
        return pixels[..., 0]
    if mode in ('RGB', 'RGBA'):
        return np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    return pixels


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), height=st.integers(1, 9), width=st.integers(1, 9), seed=st.integers(0, 2**16),
       suffix=st.sampled_from(sorted(WRITABLE)), cut=st.one_of(st.none(), st.floats(0, 1)),
       min_side=st.integers(1, 10), color=st.booleans())
def test_the_gate_gives_the_pixels_or_names_the_file(data, height, width, seed, suffix, cut, min_side, color):
    mode = data.draw(st.sampled_from(WRITABLE[suffix]))
    pixels = _random_pixels(mode, height, width, seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f'image{suffix}'
        Image.fromarray(pixels).save(path)
        written = path.read_bytes()
        if cut is not None:
            path.write_bytes(written[:int(len(written) * cut)])
        try:
            img = read_image(path, color=color, min_side=min_side, needed_by='the test')
        except ImageFileError as error:
            assert str(error).startswith(f'{path}: ')
            if cut is None:  # an intact file is refused only for its size
                assert min(height, width) < min_side and 'is too small; the test needs' in str(error), error
            return
        assert min(height, width) >= min_side
        if color:
            assert img.shape == (height, width, 3) and img.dtype == np.uint8
            if mode in ('L', 'LA') and _exact(suffix, mode):
                np.testing.assert_array_equal(img, np.repeat(_expected_layout(pixels, mode)[..., None], 3, axis=2))
            return
        expected = _expected_layout(pixels, mode)
        assert img.shape == expected.shape and img.dtype == expected.dtype
        if _exact(suffix, mode):
            np.testing.assert_array_equal(img, expected)


def test_no_size_escapes_the_memory_check(tmp_path, monkeypatch):
    """A header within OpenCV's limits but beyond the memory left is refused before a pixel is decoded."""
    claims = tmp_path / 'claims.png'
    png_header_claiming(claims, 20000, 20000)  # 400 megapixels: under OpenCV's 2^30, above PIL's bomb limit
    monkeypatch.setattr(images, 'available_host_memory', lambda: 2**30)
    monkeypatch.setattr(images, 'check_image_decodes', lambda header: pytest.fail('decoded'))
    with pytest.raises(InsufficientMemoryError, match=rf'^{re.escape(str(claims))}: decoding its 20000x20000 pixels '
                                                      r'needs up to 3\.0 GiB of memory, more than the 1\.0 GiB '):
        read_image(claims)


def test_one_list_of_suffixes():
    assert IMAGE_SUFFIXES == tuple(suffix.lower() for suffix in IMAGE_SUFFIXES)
    assert {'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'} == set(IMAGE_SUFFIXES)


def test_infer_refuses_a_small_file_with_a_huge_header(tmp_path, model, capsys):  # noqa: F811
    _, option_file = model
    bomb = tmp_path / 'inputs' / 'bomb.png'
    bomb.parent.mkdir()
    png_header_claiming(bomb, 60000, 60000)  # 3.6 gigapixels announced in 70 bytes: never decoded here
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in tmp_path.rglob('*') if path.is_file()}
    output = tmp_path / 'sr'
    assert infer_main(['-opt', str(option_file), '-i', str(bomb.parent), '-o', str(output), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {bomb}: at scale 2 the result is 120000x120000 pixels, ') and err.count('\n') == 1
    assert not output.exists()
    assert before == {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in tmp_path.rglob('*')
                      if path.is_file()}


@pytest.mark.parametrize('content', [b'', b'\x89PNG\r\n\x1a\n truncated', b'GIF89a not really'])
def test_infer_names_a_file_that_is_no_image_before_any_work(tmp_path, model, capsys, content):  # noqa: F811
    _, option_file = model
    broken = tmp_path / 'inputs' / 'broken.png'
    broken.parent.mkdir()
    broken.write_bytes(content)
    assert infer_main(['-opt', str(option_file), '-i', str(broken.parent), '-o', str(tmp_path / 'sr')]) == 2
    assert capsys.readouterr().err.startswith(f'error: {broken}: not a readable image (')
    assert not (tmp_path / 'sr').exists()


# Each tool through its command, on a folder (a single file for export's parity image) holding a good image first and
# the bad one after it: the first would be done and written before the second was reached without a check up front.
TOOLS = ('infer', 'compare', 'plot-scales', 'export', 'prepare-data')


def _nodesr_option_file(folder: Path) -> Path:
    """A NODE-SR option file with fresh weights."""
    torch.manual_seed(0)
    net = NODEVDSR(num_in_ch=3, num_out_ch=3, num_feat=4, num_layer=2)
    weights = folder / 'nodesr.pth'
    torch.save({'params': net.state_dict()}, weights)
    option_file = folder / 'nodesr.yml'
    option_file.write_text(yaml.safe_dump({
        'name': 'tiny_nodesr', 'model_type': 'NODESRModel', 'num_gpu': 0,
        'network_g': {'type': 'NODEVDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_layer': 2},
        'ode': {'solver': 'rk4', 'num_steps': 1}, 'path': {'pretrain_network_g': str(weights)}}))
    return option_file


def _command(tool: str, option_file: Path, inputs: Path, output: Path) -> list[str]:
    """The command line of ``tool`` reading the images of ``inputs`` (export: its one image) and writing to ``output``
    (a folder, or export's ONNX file inside it)."""
    if tool == 'infer':
        return ['infer', '-opt', str(option_file), '-i', str(inputs), '-o', str(output), '--no-progress']
    if tool == 'compare':
        return ['compare', '-opt', str(option_file), '--datasets', str(inputs), '--output-dir', str(output),
                '--latency-devices', '--no-progress']
    if tool == 'plot-scales':
        return ['plot-scales', '-opt', str(_nodesr_option_file(option_file.parent)), '--hr-dir', str(inputs),
                '--output', str(output / 'psnr.png'), '--csv', str(output / 'psnr.csv'), '--scales', '2', '3']
    if tool == 'export':
        image = next(path for path in sorted(inputs.iterdir()) if not path.name.startswith('a_'))
        pytest.importorskip('onnxruntime')
        return ['export', '-opt', str(option_file), '--output', str(output / 'model.onnx'), '--parity-image',
                str(image)]
    return ['prepare-data', 'benchmark', '--input', str(inputs), '--output', str(output), '--scales', '2',
            '--num-workers', '1']


def _write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)


def _truncated(path: Path) -> None:
    _write_png(path, np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:300])


def _not_an_image(path: Path) -> None:
    path.write_text('a text file that only has the name of an image\n')


def _smaller_than_the_scale(path: Path) -> None:
    _write_png(path, np.full((1, 1, 3), 128, np.uint8))


def _huge_header(path: Path) -> None:
    png_header_claiming(path, 60000, 60000)


BAD_IMAGES = {'truncated': (_truncated, 'truncated or corrupt'),
              'not an image': (_not_an_image, 'not a readable image'),
              'smaller than the scale': (_smaller_than_the_scale, '1x1 pixels is too small; '),
              # infer counts its result first (twice the sides), the others refuse what OpenCV would not decode.
              'huge header': (_huge_header, r'(the result is 120000x120000|announces 60000x60000) pixels')}


@pytest.mark.parametrize('case', sorted(BAD_IMAGES))
@pytest.mark.parametrize('tool', TOOLS)
def test_every_tool_names_a_bad_image_before_writing_anything(tmp_path, model, capsys, tool, case,  # noqa: F811
                                                              one_thread):
    _, option_file = model
    inputs = tmp_path / 'inputs'
    _write_png(inputs / 'a_good.png', smooth_image(np.random.default_rng(1), 36, 36))
    bad = inputs / 'b_bad.png'
    make, reason = BAD_IMAGES[case]
    make(bad)
    command = _command(tool, option_file, inputs, tmp_path / 'out')
    before = tree_snapshot(tmp_path)
    capsys.readouterr()
    assert cli_main(command) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, f'error: {bad}: ')
    assert re.search(reason, err), err
    assert tree_snapshot(tmp_path) == before  # nothing written, no input changed


def test_the_command_line_reports_a_bad_image_in_one_line(tmp_path, model):  # noqa: F811
    """The wiring: the installed entry point's exit status and stderr, in a process of its own."""
    _, option_file = model
    bad = tmp_path / 'inputs' / 'cut.png'
    _truncated(bad)
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'infer', '-opt', str(option_file), '-i', str(bad),
                             '-o', str(tmp_path / 'out')], capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 2
    assert_one_line_error(result.stderr, f'error: {bad}: truncated or corrupt')
    assert not (tmp_path / 'out').exists()


def _gray_and_gray_alpha(folder: Path, height: int = 36, width: int = 38) -> np.ndarray:
    """``gray.png`` and ``gray_alpha.png`` (the same gray levels, PIL mode LA, a varying alpha) in ``folder``."""
    gray = smooth_image(np.random.default_rng(2), height, width)[..., 0]
    alpha = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    _write_png(folder / 'gray.png', gray)
    _write_png(folder / 'gray_alpha.png', np.dstack([gray, alpha]), 'LA')
    assert Image.open(folder / 'gray_alpha.png').mode == 'LA'
    return gray


def test_gray_alpha_is_read_as_gray_by_infer(tmp_path, model, one_thread):  # noqa: F811
    _, option_file = model
    _gray_and_gray_alpha(tmp_path / 'in')
    assert cli_main(_command('infer', option_file, tmp_path / 'in', tmp_path / 'out')) == 0
    gray, gray_alpha = (cv2.imread(str(tmp_path / 'out' / name), cv2.IMREAD_UNCHANGED)
                        for name in ('gray.png', 'gray_alpha.png'))
    assert gray.shape == (72, 76) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray_alpha, gray)


def test_gray_alpha_is_read_as_gray_by_compare(tmp_path, model, capsys, one_thread):  # noqa: F811
    _, option_file = model
    _gray_and_gray_alpha(tmp_path / 'both')
    for name in ('gray', 'gray_alpha'):
        (tmp_path / name).mkdir()
        (tmp_path / 'both' / f'{name}.png').rename(tmp_path / name / 'image.png')
    command = _command('compare', option_file, tmp_path / 'gray', tmp_path / 'out')
    command[command.index('--datasets') + 1:command.index('--datasets') + 2] = [str(tmp_path / 'gray'),
                                                                                str(tmp_path / 'gray_alpha')]
    assert cli_main(command) == 0
    (row, ) = csv.DictReader((tmp_path / 'out' / 'comparison.csv').read_text().splitlines())
    for metric in ('psnr', 'ssim'):
        assert row[f'gray_alpha_{metric}'] == row[f'gray_{metric}'] != '', row


def test_gray_alpha_is_read_as_gray_by_plot_scales(tmp_path, model, one_thread):  # noqa: F811
    pytest.importorskip('matplotlib')
    _, option_file = model
    _gray_and_gray_alpha(tmp_path / 'both')
    tables = []
    for name in ('gray', 'gray_alpha'):
        (tmp_path / name).mkdir()
        (tmp_path / 'both' / f'{name}.png').rename(tmp_path / name / 'image.png')
        (tmp_path / f'out_{name}').mkdir()
        assert cli_main(_command('plot-scales', option_file, tmp_path / name, tmp_path / f'out_{name}')) == 0
        tables.append((tmp_path / f'out_{name}' / 'psnr.csv').read_text())
    assert tables[0] == tables[1] and len(tables[0].splitlines()) == 3


def test_gray_alpha_is_read_as_gray_by_export(tmp_path, model, capsys, one_thread):  # noqa: F811
    pytest.importorskip('onnxruntime')
    _, option_file = model
    _gray_and_gray_alpha(tmp_path / 'in')
    printed = []
    for name in ('gray', 'gray_alpha'):
        image = tmp_path / 'in' / f'{name}.png'
        assert cli_main(['export', '-opt', str(option_file), '--output', str(tmp_path / f'{name}.onnx'),
                         '--parity-image', str(image)]) == 0
        printed.append(next(line for line in capsys.readouterr().out.splitlines()
                            if line.startswith('parity')).replace(str(image), 'IMAGE'))
    assert printed[0] == printed[1], printed
    assert (tmp_path / 'gray.onnx').read_bytes() == (tmp_path / 'gray_alpha.onnx').read_bytes()


def test_gray_alpha_is_read_as_gray_by_prepare_data(tmp_path):
    gray = _gray_and_gray_alpha(tmp_path / 'in')
    assert cli_main(_command('prepare-data', Path(), tmp_path / 'in', tmp_path / 'out')) == 0
    for folder in ('GTmod12', 'LRbicx2'):
        results = [cv2.imread(str(tmp_path / 'out' / folder / name), cv2.IMREAD_UNCHANGED)
                   for name in ('gray.png', 'gray_alpha.png')]
        assert results[0].ndim == 2
        np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'out' / 'GTmod12' / 'gray.png'), cv2.IMREAD_UNCHANGED),
                                  gray[:36, :36])
