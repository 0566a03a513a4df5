"""Writing files so that a reader never sees half of one.

Every output goes to a temporary file in the destination's folder, is flushed
and synced, and is then renamed over the destination: a process killed at any
moment leaves either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from deepmd_like.errors import UserError


def refuse_overwrite(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a Path, or raise if it exists and ``overwrite`` is off."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it there on success.

    The temporary file is removed if the block raises, so a failed write
    leaves nothing behind and the previous ``path`` (if any) untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temporary_beside(path, suffix or ".tmp")
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def temporary_beside(path: Path, suffix: str = ".tmp", directory: bool = False) -> Path:
    """A new empty file (or folder) ``.NAME.PID.XXXX.SUFFIX`` beside ``path``.

    It gets the permissions ``open()`` (or ``mkdir()``) would give; the PID
    in its name lets a later writer recognise a killed process's leftovers.
    Raises :class:`UserError` if the folder cannot be written.
    """
    prefix = f".{path.name}.{os.getpid()}."
    try:
        if directory:
            name = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent)
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
            os.close(fd)
    except OSError as err:
        raise UserError(
            f"{path.parent}: cannot write in the output folder "
            f"({err.strerror or err})"
        ) from None
    default_permissions(name, directory=directory)
    return Path(name)


def default_permissions(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file or folder made by ``mkstemp``/``mkdtemp`` (private to its
    owner) the permissions a plain ``open()`` or ``mkdir()`` would give it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to disk where the OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fresh_run_dir(root: str | os.PathLike, prefix: str = "run") -> Path:
    """Create and return a new, empty, uniquely named folder under ``root``."""
    import datetime

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        name = f"{prefix}-{stamp}" + (f"-{n}" if n else "")
        candidate = root / name
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a fresh run folder under {root}")
