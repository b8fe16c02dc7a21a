"""Image files: the one list of file name endings that every tool and dataset reads as images, and the one reader
of their headers and pixels.

Every tool reads an image with :func:`read_image`, or, to refuse a bad file among many before any output is written,
checks each with :func:`check_image` first and decodes the header it returned with :func:`decode_image`. It goes in
steps, each of which names the file when it refuses it:

1. :func:`read_image_header` reads its size and pixel layout from the header alone, so that the caller can check
   that its work fits in memory (:func:`~oisr_basicsr.memory.check_result_fits`) before a single pixel is decoded;
   no size is exempt from a check, not even one PIL calls a decompression bomb.
2. The size is checked against what the caller's work needs (``min_side``: an image smaller than the scale) and
   against what decoding needs: OpenCV's own pixel limits, and the memory of the decoded pixels.
3. :func:`check_image_decodes` decodes it completely, so that a truncated or corrupt file is named instead of
   being read as a partial image (OpenCV's JPEG decoder fills a cut-off file with gray and only warns).
4. OpenCV decodes the pixels, as BasicSR reads training images, so that every tool sees the values training saw.

Layouts are OpenCV's (BGR, alpha last), with one exception: a gray image with alpha (PNG's gray+alpha, PIL's
``LA``), which OpenCV gives as four channels, comes back gray, its alpha dropped, so that it gives the result of
the same image without alpha in every tool.
"""

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageFileError, InsufficientMemoryError
from .host_memory import available_host_memory, format_bytes

# Lower case; OpenCV decodes all of them.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

_PIXEL_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read before any pixel is decoded.

    Args:
        path: The file.
        height: Rows of pixels.
        width: Columns of pixels.
        mode: PIL's name of the pixel layout (``L``, ``LA``, ``RGB``, ``RGBA``, ``I;16``, ...).
    """

    path: Path
    height: int
    width: int
    mode: str

    @property
    def pixels(self) -> int:
        """Height x width."""
        return self.height * self.width


@contextlib.contextmanager
def _without_pixel_limit() -> Iterator[None]:
    """PIL refuses large headers on its own (a warning above ``MAX_IMAGE_PIXELS``, an error above twice that)
    before the caller could see the size; the size is the caller's to judge, by the memory the work needs."""
    with _PIXEL_LIMIT_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """PIL warns about what it can read past (a damaged EXIF block in a TIFF); the gate's verdict is its errors, and
    a refusal is one line, so its warnings would only add lines to what the user sees."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def read_image_header(path: str | Path) -> ImageHeader:
    """The size and pixel layout of an image file, from its header alone (nothing is decoded).

    Args:
        path: The file.

    Raises:
        ImageFileError: ``<path>: cannot be read`` (missing, a folder, no permission) or ``<path>: not a readable
            image`` (not an image format PIL knows, or a damaged header).
    """
    path = Path(path)
    try:
        with _without_pixel_limit(), _quietly(), Image.open(path) as image:
            header = ImageHeader(path, image.height, image.width, image.mode)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise ImageFileError(f'{path}: cannot be read ({error.strerror}).') from None
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for a file that is not an image it knows
        raise ImageFileError(f'{path}: not a readable image ({error}).') from None
    if header.height < 1 or header.width < 1:
        raise ImageFileError(f'{path}: not a readable image (its header announces {header.width}x{header.height} '
                             'pixels).')
    return header


def check_image_decodes(header: ImageHeader) -> None:
    """Decode the whole image once and refuse it if it is truncated or corrupt. Check that it fits in memory first.

    Args:
        header: From :func:`read_image_header`.

    Raises:
        ImageFileError: ``<path>: truncated or corrupt (...)``.
    """
    try:
        with _without_pixel_limit(), _quietly(), Image.open(header.path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(f'{header.path}: truncated or corrupt ({error}).') from None


# OpenCV's decoders refuse (with an assertion) images beyond these sizes; the variables are OpenCV's own.
_OPENCV_LIMITS = (('OPENCV_IO_MAX_IMAGE_WIDTH', 1 << 20), ('OPENCV_IO_MAX_IMAGE_HEIGHT', 1 << 20),
                  ('OPENCV_IO_MAX_IMAGE_PIXELS', 1 << 30))
# The largest value per pixel that decoding holds at once: PIL keeps a multi-band image in 4 bytes per pixel while
# it checks the file, OpenCV's array then takes up to 4 channels of 16 bits.
_DECODED_BYTES_PER_PIXEL = 8


def _opencv_limits() -> tuple[int, int, int]:
    """Width, height and pixels OpenCV decodes at most."""
    return tuple(int(os.environ.get(name, default)) for name, default in _OPENCV_LIMITS)


def check_image(path: str | Path, min_side: int = 1, needed_by: str = '') -> ImageHeader:
    """Everything :func:`read_image` checks before it keeps any pixel: the header, the size (against ``min_side``,
    OpenCV's limits and the memory decoding needs) and a complete decode.

    Args:
        path: The file.
        min_side: Fewest pixels the caller's work needs on each side, e.g. the scale.
        needed_by: What needs them, for the message, e.g. ``scale 4``.

    Returns:
        The header.

    Raises:
        ImageFileError: ``<path>: ...``: not an image, truncated or corrupt, too small, or beyond OpenCV's limits.
        InsufficientMemoryError: ``<path>: ...``: its decoded pixels do not fit in the memory available.
    """
    header = read_image_header(path)
    height, width = header.height, header.width
    if min(height, width) < min_side:
        raise ImageFileError(f'{header.path}: {width}x{height} pixels is too small; {needed_by} needs at least '
                             f'{min_side} pixels on each side.')
    max_width, max_height, max_pixels = _opencv_limits()
    if width > max_width or height > max_height or header.pixels > max_pixels:
        raise ImageFileError(f'{header.path}: its header announces {width}x{height} pixels, more than OpenCV '
                             f'decodes ({max_width} wide, {max_height} high, {max_pixels} pixels in all; '
                             f'{", ".join(name for name, _ in _OPENCV_LIMITS)} raise the limits).')
    needed = header.pixels * _DECODED_BYTES_PER_PIXEL
    available = available_host_memory()
    if available is not None and needed > available:
        raise InsufficientMemoryError(f'{header.path}: decoding its {width}x{height} pixels needs up to '
                                      f'{format_bytes(needed)} of memory, more than the {format_bytes(available)} '
                                      'available.')
    check_image_decodes(header)
    return header


def read_image(path: str | Path, color: bool = False, min_side: int = 1, needed_by: str = '') -> np.ndarray:
    """The pixels of an image file, checked first by :func:`check_image`, then decoded by :func:`decode_image`.

    Args:
        path: The file.
        color: As for :func:`decode_image`.
        min_side, needed_by: As for :func:`check_image`.

    Raises:
        ImageFileError, InsufficientMemoryError: As for :func:`check_image`, and a file OpenCV cannot decode.
    """
    return decode_image(check_image(path, min_side, needed_by), color)


def decode_image(header: ImageHeader, color: bool = False) -> np.ndarray:
    """The pixels of an image that :func:`check_image` has accepted, decoded by OpenCV (a caller that checks many
    files before any work keeps their headers, so that no file is checked twice).

    Args:
        header: What :func:`check_image` returned.
        color: ``True``: 8-bit BGR, as ``cv2.IMREAD_COLOR`` reads it (gray as three equal channels, alpha dropped,
            16 bits reduced to 8). ``False``: as stored, as ``cv2.IMREAD_UNCHANGED`` reads it: HxW gray, HxWx3 BGR
            or HxWx4 BGRA, 8 or 16 bits per value; gray with alpha comes back as HxW gray.

    Raises:
        ImageFileError: A file OpenCV cannot decode.
    """
    flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED
    try:
        img = cv2.imdecode(np.fromfile(header.path, np.uint8), flag)
    except (OSError, cv2.error) as error:
        raise ImageFileError(f'{header.path}: OpenCV cannot decode it ({error}).') from None
    if img is None:
        raise ImageFileError(f'{header.path}: OpenCV cannot decode it (a format or layout it does not read).')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not color and header.mode == 'LA' and img.ndim == 3:
        img = img[..., 0]  # OpenCV repeats the gray level in B, G and R
    return img
