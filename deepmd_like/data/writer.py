"""Writing datasets: new systems and appended frames, never a half-written file.

:class:`DatasetWriter` creates a file (or opens an existing one) and adds
systems and frames. Every call is one transaction: the file on disk shows
either everything it wrote or nothing of it, even if the process is killed
with ``SIGKILL`` in the middle (see :mod:`deepmd_like.data.journal`). A
transaction costs about what it writes (the new chunks plus the HDF5
metadata pages it touches), not the size of the file, so an MD run can append
a frame to a 10,000-frame trajectory cheaply. Two writers on one file are
refused: the second gets a clear error and the first's data stays intact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
from numpy.typing import ArrayLike

from deepmd_like.data import journal as _journal
from deepmd_like.data.publish import prepare_folder
from deepmd_like.data.schema import (
    LABEL_MASKS,
    MAX_ATOMIC_NUMBER,
    ROOT_ATTRS,
    SYSTEMS,
    check_root,
    read_system_info,
)
from deepmd_like.errors import UserError
from deepmd_like.fileio import atomic_path, default_permissions

logger = logging.getLogger(__name__)

# Target bytes per chunk of a per-atom array: small enough that serving one
# frame in random order decompresses little, large enough to compress well.
CHUNK_BYTES = 8 * 1024
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def _attr_value(value: Any) -> Any:
    """Turn a Python value into something HDF5 stores as an attribute."""
    if value is None:
        return "null"
    if isinstance(value, (str, bytes, int, float, bool, np.generic)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float, bool)) for v in value
    ):
        return np.asarray(value)
    return json.dumps(value, default=str)


class DatasetWriter:
    """Create or extend an HDF5 dataset file (format version 1).

    Parameters
    ----------
    path : the file. Created if missing; an existing dataset is extended.
    overwrite : start a new, empty file even if ``path`` exists.
    journal : make every transaction survive ``SIGKILL`` and lock out other
        writers (default). Pass False only for a file no one else can see
        yet, such as a temporary file that is renamed into place when done:
        writes then go straight to disk.
    compression : HDF5 filter options for new datasets (gzip level 4 with
        byte shuffle by default; ``{}`` for none).
    shown_as : the name used in error messages (default ``path``): the
        final name of a temporary file that is renamed into place.
    sync : flush every transaction to the disk (``fsync``). False keeps the
        guarantee against a killed process but not against a power cut, and
        makes frequent small appends cheaper.

    Notes
    -----
    A journaled writer keeps an empty lock file ``.NAME.lock`` beside the
    data file (and, only while committing, a journal ``.NAME.journal``).
    The lock is released by the kernel when the process ends, however it
    ends; the file may be deleted whenever no writer runs.

    Examples
    --------
    >>> with DatasetWriter("traj.h5") as writer:           # doctest: +SKIP
    ...     writer.add_system("md", numbers, positions[:1], energy=None)
    ...     writer.append_frames("md", positions[1:], energy=None)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        journal: bool = True,
        compression: Mapping[str, Any] | None = None,
        sync: bool = True,
        shown_as: str | os.PathLike | None = None,
    ):
        self.path = Path(path)
        self._shown = Path(shown_as) if shown_as is not None else self.path
        self.journal = journal
        self.sync = sync
        self.compression = dict(COMPRESSION if compression is None else compression)
        self._lock = _journal.WriterLock(self.path) if journal else None
        self._h5: h5py.File | None = None
        self._overlay: _journal.OverlayFile | None = None
        self._depth = 0
        prepare_folder(self.path.parent)
        if self.path.is_dir():
            raise UserError(f"{self.path}: is a folder, expected a dataset file")
        if self._lock is not None:
            self._lock.acquire()
        try:
            if journal and _journal.recover(self.path):
                logger.warning(
                    "%s: undid an append that a killed writer left unfinished",
                    self.path,
                )
            if overwrite or not self.path.exists():
                self._create_empty()
            else:
                self._check_existing()
        except BaseException:
            self.close()
            raise

    # File life cycle ---------------------------------------------------------
    def _create_empty(self) -> None:
        def write(target: Path) -> None:
            with h5py.File(target, "w", locking=False) as h5:
                for key, value in ROOT_ATTRS.items():
                    h5.attrs[key] = value
                # Systems are listed in the order they were added.
                h5.create_group(SYSTEMS, track_order=True)

        if self.journal:
            with atomic_path(self.path, suffix=".h5") as tmp:
                write(tmp)
                default_permissions(tmp)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write(self.path)

    def _check_existing(self) -> None:
        if not h5py.is_hdf5(self.path):
            raise UserError(f"{self.path}: exists and is not an HDF5 file")
        with h5py.File(self.path, "r", locking=False) as h5:
            check_root(h5, str(self.path))

    def _open(self) -> h5py.File:
        if self.journal:
            self._overlay = _journal.OverlayFile(self.path)
            return h5py.File(self._overlay, "r+")
        return h5py.File(self.path, "r+", locking=False)

    @contextlib.contextmanager
    def batch(self) -> Iterator[h5py.File]:
        """Group several calls into one transaction (all or nothing on disk)."""
        if self._lock is None and self.journal:
            raise UserError(f"{self.path}: the writer is closed")
        if self._depth == 0:
            self._h5 = self._open()
        self._depth += 1
        ok = False
        try:
            yield self._h5
            ok = True
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._finish(ok)

    def _finish(self, ok: bool) -> None:
        h5, overlay = self._h5, self._overlay
        self._h5 = self._overlay = None
        try:
            if h5 is not None:
                h5.close()
            if overlay is not None and ok:
                _journal.commit(overlay, sync=self.sync)
        finally:
            if overlay is not None:
                overlay.close()

    def close(self) -> None:
        """Release the file; every finished call is already on disk."""
        if self._h5 is not None:
            self._finish(ok=False)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # Public API --------------------------------------------------------------
    def add_system(
        self,
        name: str,
        atomic_numbers: ArrayLike,
        positions: ArrayLike,
        energy: ArrayLike | None = None,
        forces: ArrayLike | None = None,
        cell: ArrayLike | None = None,
        pbc: ArrayLike = (False, False, False),
        virial: ArrayLike | None = None,
        has_energy: ArrayLike | None = None,
        has_forces: ArrayLike | None = None,
        has_virial: ArrayLike | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a new system with its first frames.

        Parameters
        ----------
        name : system name (no ``/``, ``:`` or ``,``).
        atomic_numbers : (n_atoms,) int.
        positions : (n_frames, n_atoms, 3) float, Å.
        energy : (n_frames,) float, eV; None if no frame has one.
        forces : (n_frames, n_atoms, 3) float, eV/Å; None if absent.
        cell : (n_frames, 3, 3) or (3, 3) float, Å, rows are lattice
            vectors; None for no box (then ``pbc`` must be all False).
        pbc : (3,) bool.
        virial : (n_frames, 3, 3) float, eV, W = -V sigma; None if absent.
        has_energy, has_forces, has_virial : (n_frames,) bool masks for
            frames that carry the label (default: all, when it is given).
        attrs : system attributes, e.g. ``level_of_theory``, ``source``.
        """
        _check_name(name, self._shown)
        numbers = np.asarray(atomic_numbers)
        if numbers.ndim != 1 or numbers.dtype.kind not in "iu":
            raise UserError(
                f"{self._shown}: system {name!r}: atomic_numbers must be a 1-d "
                f"integer array, got shape {numbers.shape} dtype {numbers.dtype}"
            )
        bad = np.flatnonzero((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))
        if bad.size:
            raise UserError(
                f"{self._shown}: system {name!r}: atoms {bad[:10].tolist()} have "
                f"invalid atomic numbers {numbers[bad[:10]].tolist()}"
            )
        pbc = np.asarray(pbc, dtype=bool).reshape(3)
        n_atoms = numbers.shape[0]
        frames = _prepare_frames(
            self._shown, name, n_atoms, positions, energy, forces, cell, virial,
            has_energy, has_forces, has_virial, first_frame=0,
        )
        if pbc.any() and "cell" not in frames:
            raise UserError(
                f"{self._shown}: system {name!r}: pbc is {pbc.tolist()} but no cell "
                "was given"
            )
        with self.batch() as h5:
            systems = h5[SYSTEMS]
            if name in systems:
                raise UserError(
                    f"{self._shown}: system {name!r} already exists; use "
                    "append_frames to add frames to it or choose another name"
                )
            group = systems.create_group(name)
            group.create_dataset("atomic_numbers", data=numbers.astype(np.int64))
            group.create_dataset("pbc", data=pbc)
            n_frames = frames["positions"].shape[0]
            chunk = max(1, min(4096, CHUNK_BYTES // max(1, n_atoms * 24)))
            for key, value in frames.items():
                if key in LABEL_MASKS.values():
                    if value.all():
                        continue
                    self._create(group, key, value, max(chunk, 4096))
                else:
                    rows = chunk if value.ndim == 3 else max(chunk, 1024)
                    self._create(group, key, value, rows)
            info = {"level_of_theory": "unknown", "source": "unknown"}
            info.update(attrs or {})
            for key, value in info.items():
                group.attrs[key] = _attr_value(value)
            logger.debug("%s: added system %r, %d frames", self.path, name, n_frames)

    def append_frames(
        self,
        name: str,
        positions: ArrayLike,
        energy: ArrayLike | None = None,
        forces: ArrayLike | None = None,
        cell: ArrayLike | None = None,
        virial: ArrayLike | None = None,
        has_energy: ArrayLike | None = None,
        has_forces: ArrayLike | None = None,
        has_virial: ArrayLike | None = None,
    ) -> None:
        """Append frames to an existing system (same atoms, same order).

        Arguments as in :meth:`add_system`. A label that earlier frames lack
        (or that these frames lack) is stored with a mask, never as zeros.
        """
        with self.batch() as h5:
            systems = h5[SYSTEMS]
            if name not in systems:
                raise UserError(
                    f"{self._shown}: no system {name!r} to append to; existing: "
                    f"{sorted(systems)}; use add_system to create it"
                )
            group = systems[name]
            info = read_system_info(group, str(self._shown))
            frames = _prepare_frames(
                self._shown, name, info.n_atoms, positions, energy, forces, cell,
                virial, has_energy, has_forces, has_virial,
                first_frame=info.n_frames,
            )
            if info.has_cell != ("cell" in frames):
                raise UserError(
                    f"{self._shown}: system {name!r} "
                    + ("has a cell; pass cell=" if info.has_cell else "has no cell")
                    + " for the appended frames"
                )
            old, new = info.n_frames, frames["positions"].shape[0]
            for label, mask in LABEL_MASKS.items():
                if label in group and label not in frames:
                    # These frames lack a label that earlier frames carry.
                    trailing = group[label].shape[1:]
                    frames[label] = np.full((new, *trailing), np.nan)
                    frames[mask] = np.zeros(new, bool)
            for key, value in frames.items():
                if key in LABEL_MASKS.values():
                    continue
                mask = LABEL_MASKS.get(key)
                if key not in group:
                    # Earlier frames lack this label: NaN values, mask False.
                    filler = np.full((old, *value.shape[1:]), np.nan)
                    rows = group["positions"].chunks[0]
                    rows = rows if value.ndim == 3 else max(rows, 1024)
                    self._create(group, key, filler, rows)
                    self._create(group, mask, np.zeros(old, bool), max(rows, 4096))
                self._extend(group[key], value)
            for label, mask in LABEL_MASKS.items():
                if label not in group:
                    continue
                values = frames[mask]
                if mask not in group:
                    if values.all():
                        continue
                    self._create(group, mask, np.ones(old, bool), 4096)
                self._extend(group[mask], values)
            logger.debug("%s: appended %d frames to %r", self.path, new, name)

    def set_attrs(self, name: str | None, attrs: Mapping[str, Any]) -> None:
        """Set attributes of system ``name`` (or of the file when None)."""
        with self.batch() as h5:
            target = h5 if name is None else h5[SYSTEMS][name]
            for key, value in attrs.items():
                target.attrs[key] = _attr_value(value)

    # Helpers -------------------------------------------------------------------
    def _create(self, group: h5py.Group, key: str, value: np.ndarray, rows: int):
        shape = value.shape
        chunks = (max(1, min(rows, 1 << 20)), *shape[1:])
        options = self.compression if value.dtype.kind == "f" else {}
        group.create_dataset(
            key, data=value, maxshape=(None, *shape[1:]), chunks=chunks, **options
        )

    @staticmethod
    def _extend(dset: h5py.Dataset, value: np.ndarray) -> None:
        old = dset.shape[0]
        dset.resize(old + value.shape[0], axis=0)
        dset[old:] = value


def _check_name(name: str, path: Path) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in "/:,"):
        raise UserError(
            f"{path}: system name {name!r} is not valid; use a non-empty name "
            "without '/', ':' or ','"
        )


def _prepare_frames(
    path, name, n_atoms, positions, energy, forces, cell, virial,
    has_energy, has_forces, has_virial, first_frame,
) -> dict[str, np.ndarray]:
    """Check shapes and finiteness; return float64 arrays and bool masks."""
    where = f"{path}: system {name!r}"
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[1:] != (n_atoms, 3):
        raise UserError(
            f"{where}: positions have shape {positions.shape}, expected "
            f"(n_frames, {n_atoms}, 3) for {n_atoms} atoms"
        )
    n_frames = positions.shape[0]
    out = {"positions": positions}
    _require_finite(where, "positions", positions, np.ones(n_frames, bool), first_frame)
    if cell is not None:
        cell = np.asarray(cell, dtype=np.float64)
        if cell.shape == (3, 3):
            cell = np.broadcast_to(cell, (n_frames, 3, 3)).copy()
        if cell.shape != (n_frames, 3, 3):
            raise UserError(
                f"{where}: cell has shape {cell.shape}, expected ({n_frames}, 3, 3)"
            )
        _require_finite(where, "cell", cell, np.ones(n_frames, bool), first_frame)
        out["cell"] = cell
    for key, value, mask, trailing in (
        ("energy", energy, has_energy, ()),
        ("forces", forces, has_forces, (n_atoms, 3)),
        ("virial", virial, has_virial, (3, 3)),
    ):
        mask_name = LABEL_MASKS[key]
        if value is None:
            if mask is not None and np.any(mask):
                raise UserError(f"{where}: {mask_name} is True somewhere but no {key}")
            if key == "energy":
                out[key] = np.full(n_frames, np.nan)
                out[mask_name] = np.zeros(n_frames, bool)
            continue
        value = np.array(value, dtype=np.float64)
        if key == "energy":
            value = value.reshape(-1) if value.size == n_frames else value
        if value.shape != (n_frames, *trailing):
            raise UserError(
                f"{where}: {key} has shape {value.shape}, expected "
                f"{(n_frames, *trailing)}"
                + (f" ({n_atoms} atoms)" if key == "forces" else "")
            )
        mask = (
            np.ones(n_frames, bool)
            if mask is None
            else np.asarray(mask, dtype=bool).reshape(-1)
        )
        if mask.shape != (n_frames,):
            raise UserError(f"{where}: {mask_name} has shape {mask.shape}, "
                            f"expected ({n_frames},)")
        _require_finite(where, key, value, mask, first_frame)
        value[~mask] = np.nan
        out[key] = value
        out[mask_name] = mask
    return out


def validate_record(record, where: str | os.PathLike) -> None:
    """Check a :class:`~deepmd_like.data.records.SystemRecord` before writing.

    Raises :class:`UserError` naming ``where`` (the source file), the
    system, the frame and the atoms of a bad value.
    """
    _check_name(record.name, where)
    _prepare_frames(
        where, record.name, record.n_atoms, record.positions, record.energy,
        record.forces, record.cell, record.virial, record.has_energy,
        record.has_forces, record.has_virial, first_frame=0,
    )


def _require_finite(where, key, value, mask, first_frame) -> None:
    finite = np.isfinite(value.reshape(value.shape[0], -1)).all(axis=1)
    bad = np.flatnonzero(mask & ~finite)
    if not bad.size:
        return
    frame = int(bad[0])
    message = f"{where} frame {first_frame + frame}: non-finite {key}"
    if value.ndim == 3 and value.shape[-1] == 3 and key in ("positions", "forces"):
        atoms = np.flatnonzero(~np.isfinite(value[frame]).all(axis=-1))
        message += f" on atoms {atoms[:10].tolist()}"
    if bad.size > 1:
        message += f" (and {bad.size - 1} more frames)"
    raise UserError(message)
