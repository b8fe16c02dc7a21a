"""LMDB datasets checked at start: their ``meta_info.txt`` parsed line by line, and their ``data.mdb`` as long as
the environment's own page count says.

LMDB maps ``data.mdb`` into memory; a page beyond the end of a truncated file kills the process with SIGBUS (exit
status 135, no message) the first time it is read. The environment's header, read without the map, tells how many
pages the file must hold, so a short file is refused before any entry is read.
"""

import os
import re
from pathlib import Path

import lmdb

from ..errors import OptionError

META_INFO_LINE = '<key>.<suffix> (<height>,<width>,<channels>) <compression level>'
"""What BasicSR's ``make_lmdb_from_imgs`` and ``oisr prepare-data`` write for each image."""
_META_INFO_PATTERN = re.compile(r'(?P<name>\S+) \((?P<height>\d+),(?P<width>\d+),\d+\)(?: \S+)?')


def read_meta_info(key: str, path: Path) -> dict[str, tuple[int, int]]:
    """The image sizes ``(height, width)`` by LMDB key listed in ``<path>/meta_info.txt``; the key is the name up to
    its first dot, as BasicSR's LMDB datasets read it.

    Args:
        key: The option key, naming the LMDB in errors (``datasets.train.dataroot_gt``).
        path: The LMDB folder.

    Raises:
        OptionError: The file is missing or lists no image, or a line is not :data:`META_INFO_LINE` (naming its
            number) or announces an empty image.
    """
    meta_info = path / 'meta_info.txt'
    if not meta_info.is_file():
        raise OptionError(f'{key}: {path} has no meta_info.txt; make the LMDB with oisr prepare-data or '
                          'basicsr.utils.lmdb_util.make_lmdb_from_imgs.')
    try:
        lines = meta_info.read_text(encoding='utf-8').splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise OptionError(f'{key}: {meta_info} cannot be read ({error}).') from None
    sizes = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _META_INFO_PATTERN.fullmatch(line.strip())
        if match is None:
            raise OptionError(f'{key}: {meta_info}, line {number}: {line!r} is not {META_INFO_LINE}.')
        height, width = int(match['height']), int(match['width'])
        if height < 1 or width < 1:
            raise OptionError(f'{key}: {meta_info}, line {number}: {line!r} announces an image of {height}x{width} '
                              'pixels (HxW).')
        sizes[match['name'].split('.')[0]] = (height, width)
    if not sizes:
        raise OptionError(f'{key}: {meta_info} lists no images.')
    return sizes


def open_checked_lmdb(key: str, path: Path) -> lmdb.Environment:
    """Open an LMDB read-only, as BasicSR's datasets do, after checking that ``data.mdb`` holds every page the
    environment's header counts; the caller closes it.

    Args:
        key: The option key, naming the LMDB in errors.
        path: The LMDB folder.

    Raises:
        OptionError: The LMDB cannot be opened, or its ``data.mdb`` is shorter than its pages.
    """
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as error:
        raise OptionError(f'{key}: LMDB {path} cannot be opened ({error}).') from None
    # The header (the meta pages) is read with read(), not through the map: these calls cannot fault.
    page_size = env.stat()['psize']
    needed = (env.info()['last_pgno'] + 1) * page_size
    data_file = path / 'data.mdb'
    size = os.path.getsize(data_file)
    if size < needed:
        env.close()
        raise OptionError(f'{key}: LMDB {path} is truncated: {data_file} holds {size} bytes, but its header counts '
                          f'{needed // page_size} pages of {page_size} bytes ({needed} bytes); make the LMDB again.')
    return env
