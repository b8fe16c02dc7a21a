"""The one way this package writes files: every output of every command goes through :func:`atomic_output`.

Before any work, a command checks its outputs with the rules of its run (:class:`OutputRules`):
:func:`check_output_path` for a file, :func:`check_output_folder` for a folder and :func:`output_in` for a name
joined to a folder the user named. :func:`atomic_output` applies the same checks again when it writes:

* never onto one of the run's own inputs (weights, option file, images), compared by resolved path and by inode,
  so a path through ``..`` or a hard link is caught too;
* never outside the folder the user named: a name with ``..`` or an absolute part, or one that a symbolic link
  leads elsewhere, is refused;
* an existing output only where the command's policy is to replace outputs (:attr:`OutputRules.replace`);
* a file only where a file can be (not over a folder, a FIFO or a device, not below a file), a folder only where a
  folder can be;
* a symbolic link at the target is refused, never followed.

The write itself is atomic: a new temporary file in the target's folder, synced, then renamed over the target (or,
where outputs are never replaced, linked to it, which fails if anything appeared there meanwhile), so a reader
sees the old file or the complete new one, never half of one. Every output gets the permissions of any file the
user creates (``0o666`` less the umask), not the ``0o600`` of :func:`tempfile.mkstemp`.
"""

import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath
from typing import BinaryIO

import cv2
import numpy as np

from .errors import OutputExistsError, UnsafeOutputError

PathLike = str | os.PathLike


@dataclass(frozen=True)
class OutputRules:
    """What the outputs of one run may not overwrite.

    Args:
        inputs: The run's inputs by what they are (``'the option file'``, ``'the checkpoint'``, ``'an input
            image'``): a path or several, None for one not given. No output may be one of them.
        replace: Whether an existing output is replaced (a training run's ``net_g_latest.pth``, ``oisr infer``'s
            images) or refused (``oisr convert``, ``oisr prepare-data``, ``oisr options copy``).
    """

    inputs: Mapping[str, PathLike | Iterable[PathLike | None] | None] = field(default_factory=dict)
    replace: bool = True

    def with_inputs(self, inputs: Mapping[str, PathLike | Iterable[PathLike | None] | None]) -> 'OutputRules':
        """These rules with more inputs."""
        return OutputRules({**self.inputs, **inputs}, self.replace)

    @cached_property
    def _identities(self) -> tuple[dict[Path, tuple[str, Path]], dict[tuple[int, int], tuple[str, Path]]]:
        # Each input by resolved path and, where it exists, by (device, inode); computed once per rules.
        by_path, by_inode = {}, {}
        for label, paths in self.inputs.items():
            for path in _paths(paths):
                by_path.setdefault(path.resolve(), (label, path))
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                by_inode.setdefault((info.st_dev, info.st_ino), (label, path))
        return by_path, by_inode

    def input_at(self, path: Path) -> tuple[str, Path] | None:
        """``(what, input path)`` when ``path`` is one of the inputs, else None."""
        by_path, by_inode = self._identities
        found = by_path.get(path.resolve())
        if found is None:
            try:
                info = os.stat(path)
            except OSError:
                return None
            found = by_inode.get((info.st_dev, info.st_ino))
        return found


DEFAULT_RULES = OutputRules()


def _paths(paths: PathLike | Iterable[PathLike | None] | None) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths if path is not None]


def _refuse_inputs(path: Path, rules: OutputRules) -> None:
    found = rules.input_at(path)
    if found is not None:
        label, input_path = found
        what = label if str(input_path) == str(path) else f'{label} {input_path}'
        raise UnsafeOutputError(f'{path} is {what}; an output never replaces an input of its run: choose another '
                                'output')


def _check_ancestors(path: Path) -> None:
    """The nearest existing folder above ``path`` must be a folder, so that ``path`` can be made there."""
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise UnsafeOutputError(f'{path} cannot be written: {parent} is not a folder')
            return


def _link_message(path: Path) -> str:
    return f'{path} is a symbolic link; refusing to write through it. Remove the link or choose another output.'


def _exists_message(path: Path) -> str:
    return f'{path} already exists; remove it or choose another output location'


def check_output_path(path: PathLike, rules: OutputRules = DEFAULT_RULES) -> Path:
    """``path`` as a Path, if a file may be written there under ``rules`` (module docstring).

    Raises:
        UnsafeOutputError: naming the path and what is there (:class:`~oisr_basicsr.errors.OutputExistsError` for
            an existing file that ``rules`` do not replace).
    """
    path = Path(path)
    _refuse_inputs(path, rules)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        _check_ancestors(path)
        return path
    if stat.S_ISLNK(mode):
        raise UnsafeOutputError(_link_message(path))
    if not stat.S_ISREG(mode):
        raise UnsafeOutputError(f'{path} exists and is not a regular file; refusing to write over it.')
    if not rules.replace:
        raise OutputExistsError(_exists_message(path))
    return path


def check_output_folder(path: PathLike, rules: OutputRules = DEFAULT_RULES) -> Path:
    """``path`` as a Path, if it is a folder or one can be made there; with ``rules.replace`` false it must not
    exist yet.

    Raises:
        UnsafeOutputError: ``path`` (or a folder above it) is a file, or it exists where that is refused.
    """
    path = Path(path)
    if not os.path.lexists(path):
        _check_ancestors(path)
        return path
    if not path.is_dir():
        raise UnsafeOutputError(f'{path} is not a folder; give a folder for the outputs, or a name for a new one')
    if not rules.replace:
        raise OutputExistsError(_exists_message(path))
    return path


def output_in(folder: PathLike, name: PathLike) -> Path:
    """``folder / name``, refused when it would lie outside ``folder``.

    Args:
        folder: The folder the user named.
        name: A relative name (``DIV2K_train_HR_sub``, ``states/photo``) chosen by the user or made from an input.

    Raises:
        UnsafeOutputError: ``name`` is absolute, empty or has a ``..`` part, the result is a symbolic link, or one
            inside ``folder`` leads the result elsewhere.
    """
    relative = PurePath(name)
    if relative.is_absolute() or '..' in relative.parts or not relative.parts:
        raise UnsafeOutputError(f'{str(name)!r} does not name a place inside {folder}; give a relative name without '
                                '".." parts')
    target = Path(folder) / relative
    if target.is_symlink():  # also one that leads inside: what is written there must be what the name says
        raise UnsafeOutputError(_link_message(target))
    if not target.resolve().is_relative_to(Path(folder).resolve()):
        raise UnsafeOutputError(f'{target} leads outside {folder} (through a symbolic link); refusing to write there')
    return target


@contextmanager
def atomic_output(path: PathLike, rules: OutputRules = DEFAULT_RULES) -> Iterator[BinaryIO]:
    """A binary file to write; on success it is synced and put at ``path``, on an error removed.

    Args:
        path: The target; folders missing above it are made (the check has found that the nearest existing one
            is a folder). Checked with :func:`check_output_path` before and after.
        rules: The run's inputs and its policy for existing outputs.
    """
    path = check_output_path(path, rules)
    path.parent.mkdir(parents=True, exist_ok=True)
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
        check_output_path(path, rules)
        _put_in_place(tmp_path, path, rules.replace)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _put_in_place(tmp_path: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp_path, path)
        return
    try:
        # A link fails if anything appeared at ``path`` since the check: an existing output is never replaced.
        os.link(tmp_path, path)
    except FileExistsError:
        raise OutputExistsError(_exists_message(path)) from None
    except OSError:  # a file system without hard links (FAT, some network shares): checked once more, then renamed
        check_output_path(path, OutputRules(replace=False))
        os.rename(tmp_path, path)
        return
    tmp_path.unlink()


def write_bytes(path: PathLike, data: bytes, rules: OutputRules = DEFAULT_RULES) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_output`."""
    with atomic_output(path, rules) as file:
        file.write(data)


def write_text(path: PathLike, text: str, rules: OutputRules = DEFAULT_RULES) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_output`."""
    write_bytes(path, text.encode('utf-8'), rules)


def write_image(path: PathLike, img: np.ndarray, params: list[int] | None = None,
                rules: OutputRules = DEFAULT_RULES) -> None:
    """Encode ``img`` with OpenCV by ``path``'s suffix (``.png``, ``.jpg``, ...) and write it with
    :func:`atomic_output`.

    Raises:
        OSError: OpenCV cannot encode the image in that format.
        UnsafeOutputError: ``path`` may not be written (:func:`check_output_path`).
    """
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, img, params or [])
    if not ok:
        raise OSError(f'cannot encode an image of shape {img.shape} ({img.dtype}) as {path.suffix} for {path}')
    write_bytes(path, encoded.tobytes(), rules)
