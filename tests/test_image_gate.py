"""The one reader of image files (:mod:`oisr_basicsr.images`): sizes from the header before any decoding, no size
exempt from the memory check, damaged files named."""

import hashlib
import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_infer import model  # noqa: F401  (a fixture)

from oisr_basicsr.errors import ImageFileError
from oisr_basicsr.images import IMAGE_SUFFIXES, check_image_decodes, read_image_header
from oisr_cli.commands.infer import main as infer_main


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


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), height=st.integers(1, 9), width=st.integers(1, 9), seed=st.integers(0, 2**16),
       suffix=st.sampled_from(sorted(WRITABLE)), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_every_file_is_read_exactly_or_named(data, height, width, seed, suffix, cut):
    mode = data.draw(st.sampled_from(WRITABLE[suffix]))
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    if mode == 'I;16':
        pixels = rng.integers(0, 2**16, (height, width), dtype=np.uint16)
    else:
        pixels = rng.integers(0, 256, (height, width, bands) if bands > 1 else (height, width), dtype=np.uint8)
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
