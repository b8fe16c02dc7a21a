"""Image files: the one list of file name endings that every tool and dataset reads as images, and the one reader
of their headers and pixels.

An image is opened in two steps. :func:`read_image_header` reads its size and pixel layout from the header alone,
so that the caller can check that the work fits in memory (:func:`~oisr_basicsr.memory.check_result_fits`) before
a single pixel is decoded; no size is exempt from that check, not even one PIL calls a decompression bomb.
:func:`check_image_decodes` then decodes it completely, so that a truncated or corrupt file is named instead of
being read as a partial image (OpenCV's JPEG decoder fills a cut-off file with gray and only warns).
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import ImageFileError

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
        with _without_pixel_limit(), Image.open(path) as image:
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
        with _without_pixel_limit(), Image.open(header.path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(f'{header.path}: truncated or corrupt ({error}).') from None
