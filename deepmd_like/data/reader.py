"""Reading datasets lazily: one frame at a time, for training and analysis.

:class:`Dataset` opens a file, validates its layout (format, version, units,
shapes and dtypes of every system) and then closes it again; frames are read
on demand through a handle that each process opens for itself, so a
PyTorch ``DataLoader`` with several workers works (the object pickles
without its handle). Memory stays bounded by HDF5's chunk cache whatever the
file size. Values are checked for finiteness as they are served, naming the
file, system, frame and atoms of anything bad.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import torch

from deepmd_like.data import journal as _journal
from deepmd_like.data.schema import (
    LABEL_MASKS,
    SYSTEMS,
    SystemInfo,
    check_block_finite,
    check_frame_finite,
    check_root,
    read_system_info,
)
from deepmd_like.errors import UserError

# Chunk cache per dataset; a few chunks of the largest arrays.
_CHUNK_CACHE_BYTES = 4 * 1024 * 1024


def parse_data_reference(reference: str | os.PathLike) -> tuple[Path, list[str] | None]:
    """Split ``FILE.h5[:NAME[,NAME...]]`` into the path and the system names.

    Returns ``(path, None)`` when no systems are named (all of them).
    """
    text = os.fspath(reference)
    if ":" in text and not Path(text).exists():
        path, _, names = text.rpartition(":")
        selected = [name.strip() for name in names.split(",") if name.strip()]
        if not selected:
            raise UserError(f"{text}: no system names after ':'")
        return Path(path), selected
    return Path(text), None


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open a dataset file read-only and check that it is one.

    If a writer was killed while committing, the file is shown as it was
    before that commit (the journal beside it is read, not applied).
    """
    path = _existing_file(path)
    journal = _journal.read_journal(path)
    try:
        if journal is not None:
            view = _journal.RollbackView(path, journal)
            h5 = h5py.File(view, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        else:
            if not h5py.is_hdf5(path):
                raise UserError(
                    f"{path}: not an HDF5 file; convert it first with "
                    "'dpl data convert'"
                )
            h5 = h5py.File(
                path, "r", locking=False, rdcc_nbytes=_CHUNK_CACHE_BYTES
            )
    except OSError as err:
        raise UserError(f"{path}: cannot be read as HDF5 ({err})") from None
    try:
        check_root(h5, str(path))
    except BaseException:
        h5.close()
        raise
    return h5


def _existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; a one-line error if it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an HDF5 dataset file")
    return path


@contextlib.contextmanager
def locked_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a dataset file read-only while no writer commits to it.

    Like :func:`open_h5`, but a writer appending to the file cannot commit
    while the block runs, so everything read in it belongs to one committed
    state. Waits a few seconds for a commit in progress, then raises
    :class:`UserError` ("being written by another process").
    """
    path = _existing_file(path)
    lock = _journal.ReadLock(path)
    try:
        with lock:
            with open_h5(path) as h5:
                try:
                    yield h5
                except OSError as err:
                    raise UserError(
                        f"{path}: cannot be read as HDF5 ({err})"
                    ) from None
    finally:
        lock.close()


def _file_state(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class Dataset(torch.utils.data.Dataset):
    """Frames of an HDF5 dataset as a PyTorch map-style dataset.

    Parameters
    ----------
    reference : ``FILE.h5`` (every system) or ``FILE.h5:NAME[,NAME...]``.
    systems : names of systems to use (an alternative to the ``:`` form).

    Attributes
    ----------
    path : the file.
    systems : list of :class:`~deepmd_like.data.schema.SystemInfo`
        (``name``, ``n_frames``, ``n_atoms``, ``atomic_numbers``, ``pbc``,
        ``has_cell``, ``attrs``).
    system_names : their names, in the order frames are numbered.

    Notes
    -----
    ``ds[i]`` returns one frame as a dict of tensors::

        positions      (n_atoms, 3) float64, Å
        atomic_numbers (n_atoms,)   int64
        cell           (3, 3)       float64, Å (zeros without a box)
        pbc            (3,)         bool
        energy         ()           float64, eV (0 where has_energy is False)
        forces         (n_atoms, 3) float64, eV/Å (0 where has_forces is False)
        virial         (3, 3)       float64, eV (0 where has_virial is False)
        has_energy, has_forces, has_virial   () bool
        system_index, frame_index            () int64

    Frames are numbered system after system, in file order. A dataset
    sees the file as it was when its handle opened: to see frames that a
    writer appended since, open a new :class:`Dataset` (or call
    :meth:`close`, which reopens on the next read, after the writer has
    finished its call).
    """

    def __init__(
        self, reference: str | os.PathLike, systems: Sequence[str] | None = None
    ):
        path, selected = parse_data_reference(reference)
        if systems is not None:
            selected = list(systems)
        self.path = path
        with locked_h5(path) as h5:
            group = h5[SYSTEMS]
            available = list(group)
            if selected is None:
                selected = available
            missing = [name for name in selected if name not in group]
            if missing:
                raise UserError(
                    f"{path}: no system named {', '.join(map(repr, missing))}; "
                    f"the file holds {', '.join(available) or 'no systems'}"
                )
            self.systems: list[SystemInfo] = [
                read_system_info(group[name], str(path)) for name in selected
            ]
        self.system_names = [info.name for info in self.systems]
        counts = np.array([info.n_frames for info in self.systems], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._dsets: list[dict[str, h5py.Dataset]] = []
        self._lock: _journal.ReadLock | None = None
        self._state: tuple[int, int, int] | None = None
        self._numbers = [torch.from_numpy(i.atomic_numbers) for i in self.systems]
        self._pbc = [torch.from_numpy(i.pbc.copy()) for i in self.systems]

    # Pickling drops the handle; each process opens its own.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        state["_dsets"] = []
        state["_lock"] = None
        state["_state"] = None
        return state

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, systems={self.system_names}, "
            f"frames={len(self)})"
        )

    def close(self) -> None:
        """Close this process's file handle (reopened on the next read)."""
        if self._pid == os.getpid():
            if self._h5 is not None:
                self._h5.close()
            if self._lock is not None:
                self._lock.close()
        self._h5 = None
        self._lock = None
        self._dsets = []

    def _handle(self) -> list[dict[str, h5py.Dataset]]:
        """This process's datasets; call with the read lock held."""
        state = _file_state(self.path)
        if self._h5 is None or self._pid != os.getpid() or state != self._state:
            # A writer committed since the handle opened: HDF5's cached
            # metadata may be stale, so open the file again.
            if self._h5 is not None and self._pid == os.getpid():
                self._h5.close()
            self._h5 = None
            self._h5 = open_h5(self.path)
            self._pid = os.getpid()
            self._state = state
            groups = [self._h5[SYSTEMS][name] for name in self.system_names]
            self._dsets = [self._cache_small(g) for g in groups]
        return self._dsets

    def _read_lock(self) -> _journal.ReadLock:
        if self._lock is None or self._pid != os.getpid():
            if self._lock is not None and self._pid == os.getpid():
                self._lock.close()
            self._h5 = None
            self._dsets = []
            self._lock = _journal.ReadLock(self.path)
            self._pid = os.getpid()
        return self._lock

    @staticmethod
    def _cache_small(group) -> dict:
        """Datasets of a system; small per-frame arrays are loaded in memory.

        Energies, masks, cells and virials are a few bytes per frame; keeping
        them in memory (up to 16 MB per system) halves the HDF5 reads needed
        to serve a frame. Positions and forces stay on disk.
        """
        out = {key: group[key] for key in group}
        budget = 16 * 1024 * 1024
        small = ("energy", "has_energy", "has_forces", "has_virial", "cell", "virial")
        for key in small:
            if key in out and out[key].size * out[key].dtype.itemsize <= budget:
                budget -= out[key].size * out[key].dtype.itemsize
                out[key] = out[key][()]
        return out

    def system_index(self, name_or_index: str | int) -> int:
        """Index of a system in :attr:`systems`, by name or index."""
        if isinstance(name_or_index, (int, np.integer)):
            if not 0 <= name_or_index < len(self.systems):
                raise IndexError(f"system index {name_or_index} out of range")
            return int(name_or_index)
        try:
            return self.system_names.index(name_or_index)
        except ValueError:
            raise UserError(
                f"{self.path}: no system named {name_or_index!r}; the dataset "
                f"holds {', '.join(self.system_names)}"
            ) from None

    def system_frames(self, name_or_index: str | int) -> range:
        """Global indices of the frames of one system."""
        index = self.system_index(name_or_index)
        return range(int(self._starts[index]), int(self._starts[index + 1]))

    def locate(self, index: int) -> tuple[int, int]:
        """Return ``(system index, frame index in that system)`` of a frame."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range for {n} frames")
        system = int(np.searchsorted(self._starts, index, side="right") - 1)
        return system, int(index - self._starts[system])

    # Reading -------------------------------------------------------------------
    def read_frames(
        self, system: str | int, start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]:
        """Read frames ``start:stop`` of one system as numpy arrays.

        Labels come as stored (NaN where a frame has none) together with all
        three masks; ``cell`` is present only if the system has one. Nothing
        is checked for finiteness here (see :mod:`deepmd_like.data.checks`).
        """
        index = self.system_index(system)
        info = self.systems[index]
        stop = info.n_frames if stop is None else min(stop, info.n_frames)
        out: dict[str, np.ndarray] = {
            "atomic_numbers": info.atomic_numbers.copy(),
            "pbc": info.pbc.copy(),
        }
        try:
            with self._read_lock():
                dsets = self._handle()[index]
                for key in ("positions", "cell", "energy", "forces", "virial"):
                    if key in dsets:
                        # Copies: callers never write into the cached arrays.
                        out[key] = np.array(dsets[key][start:stop])
                for label, mask in LABEL_MASKS.items():
                    if mask in dsets:
                        out[mask] = np.array(dsets[mask][start:stop])
                    else:
                        out[mask] = np.full(stop - start, label in dsets, dtype=bool)
        except (OSError, KeyError) as err:
            raise UserError(
                f"{self.path}: system {info.name!r}: cannot read frames "
                f"{start}:{stop} ({err}); the file changed since it was opened?"
            ) from None
        return out

    def read_system(self, name: str | int) -> dict[str, np.ndarray]:
        """Read one whole system as numpy arrays (see :meth:`read_frames`)."""
        return self.read_frames(name)

    def iter_blocks(
        self, system: str | int, frames_per_block: int = 4096
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yield ``(first frame, arrays)`` blocks of one system, in order."""
        info = self.systems[self.system_index(system)]
        for start in range(0, info.n_frames, frames_per_block):
            yield start, self.read_frames(system, start, start + frames_per_block)

    def _frames(
        self, system: int, block: dict, first: int, rows: Sequence[int]
    ) -> list[dict[str, torch.Tensor]]:
        """Turn rows of a block read from frame ``first`` into frame dicts."""
        if len(rows) <= 4:
            return [self._frame_row(system, block, row, first) for row in rows]
        info = self.systems[system]
        check_block_finite(block, str(self.path), info.name, first)
        n = block["positions"].shape[0]
        shapes = {"energy": (n,), "forces": (n, info.n_atoms, 3), "virial": (n, 3, 3)}
        # One tensor per array; frames are views of its rows.
        tensors = {"positions": torch.from_numpy(block["positions"])}
        tensors["cell"] = (
            torch.from_numpy(block["cell"])
            if "cell" in block
            else torch.zeros(n, 3, 3, dtype=torch.float64)
        )
        for label, mask in LABEL_MASKS.items():
            present = block[mask]
            if label in block:
                shape = (n,) + (1,) * (block[label].ndim - 1)
                value = np.where(present.reshape(shape), block[label], 0.0)
            else:
                value = np.zeros(shapes[label])
            tensors[label] = torch.from_numpy(value)
            tensors[mask] = torch.from_numpy(present.copy())
        numbers, pbc = self._numbers[system], self._pbc[system]
        frames = []
        for row in rows:
            frame = {key: value[row] for key, value in tensors.items()}
            # Copies: a caller changing a frame must not change the dataset.
            frame["atomic_numbers"] = numbers.clone()
            frame["pbc"] = pbc.clone()
            frame["system_index"] = torch.tensor(system, dtype=torch.int64)
            frame["frame_index"] = torch.tensor(first + row, dtype=torch.int64)
            frames.append(frame)
        return frames

    def _frame_row(self, system: int, block: dict, row: int, first: int) -> dict:
        """One frame from one row of a block (the fast path for single frames)."""
        info = self.systems[system]
        frame = {"positions": torch.from_numpy(block["positions"][row])}
        finite = bool(np.isfinite(block["positions"][row]).all())
        if "cell" in block:
            frame["cell"] = torch.from_numpy(block["cell"][row])
            finite &= bool(np.isfinite(block["cell"][row]).all())
        else:
            frame["cell"] = torch.zeros(3, 3, dtype=torch.float64)
        for label, mask in LABEL_MASKS.items():
            present = bool(block[mask][row])
            if present:
                value = np.asarray(block[label][row], dtype=np.float64)
                finite &= bool(np.isfinite(value).all())
                frame[label] = torch.from_numpy(value)
            elif label == "forces":
                frame[label] = torch.zeros(info.n_atoms, 3, dtype=torch.float64)
            else:
                frame[label] = torch.zeros((3, 3) if label == "virial" else (),
                                           dtype=torch.float64)
            frame[mask] = torch.tensor(present)
        if not finite:
            raw = {k: v[row] for k, v in block.items()
                   if k not in ("atomic_numbers", "pbc")}
            check_frame_finite(raw, str(self.path), info.name, first + row)
        frame["atomic_numbers"] = self._numbers[system].clone()
        frame["pbc"] = self._pbc[system].clone()
        frame["system_index"] = torch.tensor(system, dtype=torch.int64)
        frame["frame_index"] = torch.tensor(first + row, dtype=torch.int64)
        return frame

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        system, local = self.locate(int(index))
        block = self.read_frames(system, local, local + 1)
        return self._frames(system, block, local, [0])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Read several frames, fetching neighbouring ones in one slice.

        ``DataLoader`` calls this for a whole batch; sequential batches then
        cost one HDF5 read per array instead of one per frame.
        """
        located = [self.locate(int(i)) for i in indices]
        out: list[dict | None] = [None] * len(located)
        by_system: dict[int, list[tuple[int, int]]] = {}
        for position, (system, local) in enumerate(located):
            by_system.setdefault(system, []).append((local, position))
        for system, items in by_system.items():
            locals_ = [local for local, _ in items]
            lo, hi = min(locals_), max(locals_) + 1
            # One slice when it is not much larger than the frames wanted.
            if hi - lo <= max(256, 16 * len(items)):
                block = self.read_frames(system, lo, hi)
                rows = [local - lo for local, _ in items]
                for (_, position), frame in zip(
                    items, self._frames(system, block, lo, rows)
                ):
                    out[position] = frame
            else:
                for local, position in items:
                    block = self.read_frames(system, local, local + 1)
                    out[position] = self._frames(system, block, local, [0])[0]
        return out  # type: ignore[return-value]
