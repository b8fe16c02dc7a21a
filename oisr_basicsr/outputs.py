"""Writing output files so that nothing else is ever overwritten and no reader sees half a file.

:func:`atomic_output` writes to a new temporary file in the target's folder and renames it over the target:

* the target is never opened, so a symbolic link planted at its place is not followed, and a target that
  exists but is not a regular file (a link, a folder, a FIFO, a device) is refused;
* a reader sees either the old file or the complete new one;
* the file gets the permissions of any file the user creates (``0o666`` less the umask), not the ``0o600``
  of :func:`tempfile.mkstemp`.
"""

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from .errors import UnsafeOutputError


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, if it is free or a regular file (not a link to one).

    Raises:
        UnsafeOutputError: naming the path and what is there.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(mode):
        raise UnsafeOutputError(f'{path} is a symbolic link; refusing to write through it. Remove the link or '
                                'choose another output.')
    if not stat.S_ISREG(mode):
        raise UnsafeOutputError(f'{path} exists and is not a regular file; refusing to write over it.')
    return path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write; on success it is synced and renamed to ``path``, on an error removed.

    Args:
        path: The target; its folder must exist. Checked with :func:`check_output_path` before and after.
    """
    path = check_output_path(path)
    while True:
        tmp_path = path.parent / f'.{path.name}.{secrets.token_hex(4)}.tmp'
        try:
            # O_EXCL | O_NOFOLLOW: a new file of our own, never a link or a file planted at the temporary name.
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, 'wb') as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        check_output_path(path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike, img: np.ndarray, params: list[int] | None = None) -> None:
    """Encode ``img`` with OpenCV by ``path``'s suffix (``.png``, ``.jpg``, ...) and write it with
    :func:`atomic_output`.

    Raises:
        OSError: OpenCV cannot encode the image in that format.
        UnsafeOutputError: ``path`` is a link or not a regular file.
    """
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, img, params or [])
    if not ok:
        raise OSError(f'cannot encode an image of shape {img.shape} ({img.dtype}) as {path.suffix} for {path}')
    with atomic_output(path) as file:
        file.write(encoded.tobytes())
