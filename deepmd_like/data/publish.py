"""Publishing new output files: whole, never over a file being written.

:func:`publish_path` yields a temporary path beside the destination and, when
the block succeeds, puts it in place:

* without ``overwrite`` the file is linked to its name (``os.link``), which
  fails if the name exists, so two processes writing the same output at
  once cannot both succeed, and neither replaces the other's file;
* with ``overwrite`` it is renamed over the old file, but never over a
  dataset that a :class:`~deepmd_like.data.writer.DatasetWriter` holds open.

Folders that cannot be created or written, and a destination that is a
folder, are reported as one-line :class:`~deepmd_like.errors.UserError`.
Temporary files are named ``.NAME.PID.XXXX.SUFFIX``; those left by a killed
process (its pid no longer runs, or older than a day) are removed by the next
publisher of the same name.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

from deepmd_like.data import journal as _journal
from deepmd_like.errors import UserError
from deepmd_like.fileio import fsync_dir, fsync_file, temporary_beside

logger = logging.getLogger(__name__)

STALE_SECONDS = 24 * 3600


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def prepare_folder(folder: Path) -> None:
    """Create ``folder`` if needed; raise a one-line error if impossible."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{folder}: exists and is not a folder") from None
    except OSError as err:
        raise UserError(
            f"{folder}: cannot create the output folder ({_reason(err)})"
        ) from None
    if not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that were killed.

    Returns the files removed. A temporary whose writer still runs is kept.
    """
    path = Path(path)
    pattern = re.compile(
        r"^\." + re.escape(path.name) + r"\.(?:(\d+)\.)?[A-Za-z0-9_]{6,}\.[\w.]+$"
    )
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not entry.is_file() or entry.is_symlink():
            continue
        if entry.name.endswith((".journal", ".lock")):
            continue
        try:
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        pid = match.group(1)
        if pid is not None:
            stale = not _pid_alive(int(pid)) or age > STALE_SECONDS
        else:
            stale = age > 3600
        if stale:
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
                logger.info("removed %s, left by a killed writer", entry)
    return removed


@contextlib.contextmanager
def writer_excluded(path: Path, overwrite: bool) -> Iterator[None]:
    """Hold ``path``'s writer lock (if a writer ever used it) while replacing."""
    lock = None
    if overwrite and _journal.lock_path(path).exists():
        lock = _journal.WriterLock(path)
        try:
            lock.acquire()
        except UserError:
            raise UserError(
                f"{path} is being written by another process; try again when it "
                "finishes"
            ) from None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def check_destination(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a destination that exists (without ``overwrite``) or is a folder."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the name of a file to write")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    return path


@contextlib.contextmanager
def publish_path(
    path: str | os.PathLike, overwrite: bool = False, suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary file beside ``path``; publish it there on success.

    Raises :class:`UserError` (nothing written) if ``path`` exists and
    ``overwrite`` is False (also when another process publishes it first),
    if it is a folder, if a writer holds it, or if its folder cannot be
    created or written.
    """
    path = check_destination(path, overwrite)
    prepare_folder(path.parent)
    clean_stale_temporaries(path)
    tmp = temporary_beside(path, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        with writer_excluded(path, overwrite):
            _publish(tmp, path, overwrite)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the name of a file to write")
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UserError(
            f"{path} already exists (another process wrote it meanwhile); pass "
            "--overwrite to replace it"
        ) from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                             errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: the check and the rename are
        # not one step here.
        if path.exists():
            raise UserError(
                f"{path} already exists; pass --overwrite to replace it"
            ) from None
        os.replace(tmp, path)
        return
    tmp.unlink()
