"""Crash-safe in-place changes to an HDF5 file: a rollback journal.

HDF5 rewrites metadata (object headers, B-trees, the superblock) in place, so
a process killed in the middle of a write can leave a file that no longer
opens. Copying the whole file for every append would be safe but costs time
proportional to the file, not to the change. This module makes a change
cost what it writes, and still survive ``SIGKILL`` at any moment:

1. HDF5 writes through :class:`OverlayFile`, a file object that keeps every
   written byte in memory pages and reads unchanged bytes from disk. The
   file on disk is not touched while HDF5 works.
2. :func:`commit` saves the *original* bytes of every page about to be
   overwritten, and the old file length, to a journal file beside the data
   file (``.NAME.journal``), with a checksum, and syncs it.
3. Only then are the new pages written into the data file; it is synced and
   the journal is deleted. Deleting the journal is the commit point.

A process killed before step 3 began leaves the data file untouched (a torn
journal fails its checksum and is discarded); killed during step 3, it
leaves a complete journal from which :func:`recover` restores the previous
bytes and length. A reader that finds a journal reads through
:class:`RollbackView`, which shows the previous state without writing.

Writers take an exclusive lock (:class:`WriterLock`) so a second writer
fails at once instead of interleaving its changes.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import io
import os
import struct
import time
from pathlib import Path

from deepmd_like.errors import UserError
from deepmd_like.fileio import fsync_dir

PAGE = 4096
_MAGIC = b"DPLJRNL1"
_HEADER = struct.Struct("<8sQQ")  # magic, old file length, number of entries
_ENTRY = struct.Struct("<QQ")  # offset, length


def journal_path(path: str | os.PathLike) -> Path:
    """Return the journal file that belongs to the data file ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.journal")


def lock_path(path: str | os.PathLike) -> Path:
    """Return the lock file that belongs to the data file ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class _PositionedFile(io.RawIOBase):
    """A readable, seekable raw file of ``size`` bytes with a cursor ``_pos``."""

    size: int
    _pos: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos


class OverlayFile(_PositionedFile):
    """A writable view of a file whose changes stay in memory until committed.

    Reads return the newest bytes (memory first, then disk); writes go to
    4 KiB pages in memory. ``h5py.File(OverlayFile(path), "r+")`` therefore
    lets HDF5 change a file without touching it on disk.

    Parameters
    ----------
    path : path of an existing file.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        self.base_size = os.fstat(self._fd).st_size
        self.size = self.base_size
        # Bytes of the file on disk from here on were cut off by a truncate:
        # they read as zeros unless written again.
        self.disk_limit = self.base_size
        self.pages: dict[int, bytearray] = {}
        self._pos = 0

    # io.RawIOBase interface -------------------------------------------------
    def writable(self) -> bool:
        return True


    def _base_page(self, index: int) -> bytearray:
        start = index * PAGE
        length = max(0, min(PAGE, self.disk_limit - start))
        data = os.pread(self._fd, length, start) if length else b""
        page = bytearray(PAGE)
        page[: len(data)] = data
        return page

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        done = 0
        while done < n:
            offset = self._pos + done
            index, inner = divmod(offset, PAGE)
            take = min(PAGE - inner, n - done)
            page = self.pages.get(index)
            if page is not None:
                view[done : done + take] = page[inner : inner + take]
            else:
                # Read a run of untouched pages from disk in one call.
                end = offset + take
                while end < self._pos + n and (end // PAGE) not in self.pages:
                    end = min((end // PAGE + 1) * PAGE, self._pos + n)
                take = end - offset
                data = b""
                if offset < self.disk_limit:
                    length = min(take, self.disk_limit - offset)
                    data = os.pread(self._fd, length, offset)
                view[done : done + len(data)] = data
                view[done + len(data) : done + take] = bytes(take - len(data))
            done += take
        self._pos += n
        return n

    def write(self, buffer) -> int:
        data = memoryview(buffer).cast("B")
        n = len(data)
        done = 0
        while done < n:
            offset = self._pos + done
            index, inner = divmod(offset, PAGE)
            take = min(PAGE - inner, n - done)
            page = self.pages.get(index)
            if page is None:
                page = self._base_page(index)
                self.pages[index] = page
            page[inner : inner + take] = data[done : done + take]
            done += take
        self._pos += n
        self.size = max(self.size, self._pos)
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        self.disk_limit = min(self.disk_limit, size)
        if size < self.size:
            for index in [i for i in self.pages if i * PAGE >= size]:
                del self.pages[index]
            if size % PAGE and size // PAGE in self.pages:
                page = self.pages[size // PAGE]
                page[size % PAGE :] = bytes(PAGE - size % PAGE)
        elif size > self.size:
            # Bytes between the old end and the new one must read as zeros.
            self.write_zeros(self.size, size)
        self.size = size
        return size

    def write_zeros(self, start: int, end: int) -> None:
        position = self._pos
        self._pos = start
        self.write(bytes(end - start))
        self._pos = position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()

    @property
    def dirty(self) -> bool:
        """True when something differs from the file on disk."""
        return (
            bool(self.pages)
            or self.size != self.base_size
            or self.disk_limit != self.base_size
        )


def _encode_journal(original_size: int, entries: list[tuple[int, bytes]]) -> bytes:
    parts = [_HEADER.pack(_MAGIC, original_size, len(entries))]
    for offset, data in entries:
        parts.append(_ENTRY.pack(offset, len(data)))
        parts.append(data)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def _decode_journal(blob: bytes) -> tuple[int, list[tuple[int, bytes]]] | None:
    """Return (old length, [(offset, original bytes)]), or None if torn."""
    if len(blob) < _HEADER.size + 32:
        return None
    body, digest = blob[:-32], blob[-32:]
    if hashlib.sha256(body).digest() != digest:
        return None
    magic, original_size, count = _HEADER.unpack_from(body, 0)
    if magic != _MAGIC:
        return None
    entries = []
    offset = _HEADER.size
    for _ in range(count):
        start, length = _ENTRY.unpack_from(body, offset)
        offset += _ENTRY.size
        entries.append((start, body[offset : offset + length]))
        offset += length
    return original_size, entries


def _merge_entries(entries: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Sorted, non-overlapping ``(offset, bytes)`` covering the same bytes."""
    merged: list[tuple[int, bytes]] = []
    for start, data in sorted(entries, key=lambda entry: entry[0]):
        if merged and start <= merged[-1][0] + len(merged[-1][1]):
            first, kept = merged[-1]
            end = first + len(kept)
            if start + len(data) > end:
                kept = kept + data[end - start :]
            merged[-1] = (first, kept)
        else:
            merged.append((start, data))
    return merged


def read_journal(path: str | os.PathLike) -> tuple[int, list[tuple[int, bytes]]] | None:
    """Return the valid journal of data file ``path``, or None."""
    try:
        blob = journal_path(path).read_bytes()
    except FileNotFoundError:
        return None
    return _decode_journal(blob)


def commit(overlay: OverlayFile, sync: bool = True) -> None:
    """Write the changes held by ``overlay`` into its file, crash-safely.

    The caller must hold the file's :class:`WriterLock`, and HDF5 must have
    closed the file (so every change is in the overlay). ``sync=False``
    skips the ``fsync`` calls: still safe against a killed process (the
    kernel keeps what was written), not against a power cut.
    """
    _sync = os.fsync if sync else (lambda fd: None)
    _sync_dir = fsync_dir if sync else (lambda path: None)
    if not overlay.dirty:
        return
    path = overlay.path
    old_size = overlay.base_size
    indices = sorted(overlay.pages)

    # Save the bytes that will be overwritten, then make the save durable.
    entries = []
    for index in indices:
        start = index * PAGE
        if start >= old_size:
            continue
        length = min(PAGE, old_size - start)
        entries.append((start, os.pread(overlay._fd, length, start)))
    if overlay.disk_limit < old_size:
        # A truncate cut these bytes off; they are zeroed below.
        cut = overlay.disk_limit
        entries.append((cut, os.pread(overlay._fd, old_size - cut, cut)))
    blob = _encode_journal(old_size, entries)
    jpath = journal_path(path)
    # Readers hold a shared lock on the data file while they read its
    # metadata; the exclusive lock keeps them out until the commit is whole.
    data_fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(data_fd, fcntl.LOCK_EX)
        fd = os.open(jpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, blob)
            _sync(fd)
        finally:
            os.close(fd)
        _sync_dir(path.parent)

        # Publish the new bytes; the journal can undo any part of this.
        if overlay.disk_limit < old_size:
            os.ftruncate(data_fd, overlay.disk_limit)
        for index in indices:
            start = index * PAGE
            if start >= overlay.size:
                continue
            length = min(PAGE, overlay.size - start)
            os.pwrite(data_fd, bytes(overlay.pages[index][:length]), start)
        os.ftruncate(data_fd, overlay.size)
        _sync(data_fd)

        # Removing the journal is the commit point.
        os.unlink(jpath)
        _sync_dir(path.parent)
    finally:
        os.close(data_fd)  # also releases the lock
    overlay.base_size = overlay.disk_limit = overlay.size
    overlay.pages.clear()


def recover(path: str | os.PathLike) -> bool:
    """Undo an interrupted commit of ``path``; return True if one was undone.

    Only a process holding the file's :class:`WriterLock` may call this.
    """
    path = Path(path)
    jpath = journal_path(path)
    if not jpath.exists():
        return False
    if not path.exists():
        # The data file was removed or renamed; its journal is meaningless.
        os.unlink(jpath)
        return False
    journal = read_journal(path)
    if journal is not None:
        original_size, entries = journal
        fd = os.open(path, os.O_WRONLY)
        try:
            for offset, data in entries:
                os.pwrite(fd, data, offset)
            os.ftruncate(fd, original_size)
            os.fsync(fd)
        finally:
            os.close(fd)
    # A torn journal means the data file was never touched.
    os.unlink(jpath)
    fsync_dir(path.parent)
    return journal is not None


class RollbackView(_PositionedFile):
    """Read-only view of a file as it was before an interrupted commit.

    Parameters
    ----------
    path : the data file.
    journal : ``(old length, [(offset, original bytes)])`` from
        :func:`read_journal`.
    """

    def __init__(self, path: str | os.PathLike, journal):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self.size, entries = journal
        self._starts, self._ends, self._data = [], [], []
        for start, data in _merge_entries(entries):
            self._starts.append(start)
            self._ends.append(start + len(data))
            self._data.append(data)
        self._pos = 0


    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        done = 0
        while done < n:
            offset = self._pos + done
            # The saved original bytes cover offset, or disk holds them.
            k = bisect.bisect_right(self._starts, offset) - 1
            if k >= 0 and offset < self._ends[k]:
                inner = offset - self._starts[k]
                take = min(n - done, self._ends[k] - offset)
                data = self._data[k][inner : inner + take]
            else:
                following = self._starts[k + 1] if k + 1 < len(self._starts) else None
                take = n - done
                if following is not None:
                    take = min(take, following - offset)
                data = os.pread(self._fd, take, offset)
            view[done : done + len(data)] = data
            view[done + len(data) : done + take] = bytes(take - len(data))
            done += take
        self._pos += n
        return n

    def write(self, buffer) -> int:
        raise io.UnsupportedOperation("read-only view")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("read-only view")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ReadLock:
    """Shared lock on a data file that keeps a commit out while held.

    A commit holds the exclusive lock on the data file from writing the
    journal to deleting it, so a reader holding this lock sees the state
    before or after a commit, never a mixture. If a commit does not finish
    within ``timeout`` seconds, :meth:`acquire` raises :class:`UserError`.

    The lock file descriptor stays open between acquisitions; call
    :meth:`close` when done.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None
        self._held = 0

    def acquire(self) -> None:
        if self._held:
            self._held += 1
            return
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise UserError(f"{self.path}: no such file") from None
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(
                        f"{self.path} is being written by another process; try "
                        "again when it finishes"
                    ) from None
                time.sleep(delay)
                delay = min(0.05, delay * 2)
        self._held = 1

    def release(self) -> None:
        if self._held:
            self._held -= 1
            if not self._held and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._held = 0

    def __enter__(self) -> "ReadLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class WriterLock:
    """Exclusive, non-blocking lock that marks a file as being written.

    The lock lives in ``.NAME.lock`` beside the file (``flock``; released by
    the kernel when the process dies, so a killed writer never leaves a stale
    lock). A second writer gets a :class:`UserError` naming the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        lpath = lock_path(self.path)
        try:
            lpath.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lpath, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(
                f"{lpath.parent}: cannot write in this folder "
                f"({err.strerror or err})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.path} is being written by another process; wait for it "
                "to finish (two writers on one file would corrupt it)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
