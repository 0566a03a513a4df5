"""In-memory systems: what converters produce and what gets written.

A :class:`SystemRecord` holds one system's arrays in the file's units (eV, Å)
with label masks. Converters return lists of them; :func:`write_records`
writes them to a new HDF5 file atomically (a temporary file renamed into
place), so a failed conversion leaves no output behind.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepmd_like.fileio import default_permissions
from deepmd_like.data.publish import check_destination, publish_path
from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class SystemRecord:
    """One system's frames in memory.

    Attributes
    ----------
    name : system name.
    atomic_numbers : (n_atoms,) int64.
    positions : (n_frames, n_atoms, 3) float64, Å.
    energy : (n_frames,) float64, eV, or None.
    forces : (n_frames, n_atoms, 3) float64, eV/Å, or None.
    cell : (n_frames, 3, 3) float64, Å, or None (no box).
    pbc : (3,) bool.
    virial : (n_frames, 3, 3) float64, eV, or None.
    has_energy, has_forces, has_virial : (n_frames,) bool or None (= all
        frames, when the label is given).
    attrs : system attributes (``source``, ``level_of_theory``, ...).
    """

    name: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, bool))
    virial: np.ndarray | None = None
    has_energy: np.ndarray | None = None
    has_forces: np.ndarray | None = None
    has_virial: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def writer_arguments(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`DatasetWriter.add_system`."""
        return {
            "name": self.name,
            "atomic_numbers": self.atomic_numbers,
            "positions": self.positions,
            "energy": self.energy,
            "forces": self.forces,
            "cell": self.cell,
            "pbc": self.pbc,
            "virial": self.virial,
            "has_energy": self.has_energy,
            "has_forces": self.has_forces,
            "has_virial": self.has_virial,
            "attrs": self.attrs,
        }


def unique_names(records: Sequence[SystemRecord]) -> None:
    """Rename records in place so that every name is unique (``name_2``, ...)."""
    seen: dict[str, int] = {}
    for record in records:
        base = record.name
        if base in seen:
            seen[base] += 1
            candidate = f"{base}_{seen[base]}"
            while candidate in seen:
                seen[base] += 1
                candidate = f"{base}_{seen[base]}"
            logger.info("system name %r is taken; using %r", base, candidate)
            record.name = candidate
        seen.setdefault(record.name, 1)


def write_records(
    records: Sequence[SystemRecord],
    path: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Write systems to a new dataset file, atomically.

    Raises :class:`UserError` if ``path`` exists and ``overwrite`` is False,
    or if a record is invalid (the message names system and frame); nothing
    is written then.
    """
    from deepmd_like.data.writer import DatasetWriter, validate_record

    path = check_destination(path, overwrite)
    if not records:
        raise UserError(f"nothing to write to {path}: no frames were read")
    for record in records:
        where = record.attrs.get("converted_from") or record.attrs.get("source")
        validate_record(record, where or path)
    with publish_path(path, overwrite, suffix=".h5") as tmp:
        with DatasetWriter(
            tmp, overwrite=True, journal=False, shown_as=path
        ) as writer:
            for record in records:
                writer.add_system(**record.writer_arguments())
        default_permissions(tmp)
    return path

