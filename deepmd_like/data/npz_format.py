"""MD17-style ``.npz`` archives: one molecule, many frames.

Two layouts are recognised: the original MD17 (``R`` positions, ``z``
atomic numbers, ``E`` energies, ``F`` forces) and revised MD17 (``coords``,
``nuclear_charges``, ``energies``, ``forces``). The archives carry no units;
MD17 and rMD17 use kcal/mol and kcal/mol/Å, so pass ``--energy-unit
kcal/mol`` (the force unit then follows as kcal/mol/Å).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from deepmd_like.data.records import SystemRecord
from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)

# (positions, atomic numbers, energy, forces) key names per layout.
LAYOUTS = (
    ("R", "z", "E", "F"),
    ("coords", "nuclear_charges", "energies", "forces"),
)
_IGNORED = {
    "name", "theory", "md5", "type", "old_indices", "old_energies", "old_forces",
}


def read_npz(
    path: str | os.PathLike,
    energy_factor: float = 1.0,
    length_factor: float = 1.0,
    force_factor: float = 1.0,
    energy_key: str | None = None,
    forces_key: str | None = None,
) -> list[SystemRecord]:
    """Read an MD17-style archive as one system named after the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        archive = dict(np.load(path, allow_pickle=False))
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable .npz archive ({err})") from None
    for pos_key, z_key, e_key, f_key in LAYOUTS:
        if pos_key in archive and z_key in archive:
            break
    else:
        raise UserError(
            f"{path}: no MD17 layout found (expected keys R, z, E, F or coords, "
            f"nuclear_charges, energies, forces); keys are {sorted(archive)}"
        )
    e_key = energy_key or e_key
    f_key = forces_key or f_key
    numbers = np.asarray(archive[z_key]).astype(np.int64).reshape(-1)
    positions = np.asarray(archive[pos_key], dtype=np.float64)
    if positions.ndim == 2:
        positions = positions[None]
    n_frames, n_atoms = positions.shape[0], numbers.shape[0]
    if positions.shape != (n_frames, n_atoms, 3):
        raise UserError(
            f"{path}: {pos_key} has shape {positions.shape}, expected "
            f"(n_frames, {n_atoms}, 3) for the {n_atoms} atoms in {z_key}"
        )
    if e_key not in archive:
        raise UserError(f"{path}: no energy key {e_key!r}; pass --energy-key")
    energy = np.asarray(archive[e_key], dtype=np.float64).reshape(-1)
    if energy.shape != (n_frames,):
        raise UserError(
            f"{path}: {e_key} has {energy.size} values for {n_frames} frames"
        )
    record = SystemRecord(
        name=path.stem,
        atomic_numbers=numbers,
        positions=positions * length_factor,
        energy=energy * energy_factor,
        attrs={"source": str(path), "source_format": "npz"},
    )
    if f_key in archive:
        forces = np.asarray(archive[f_key], dtype=np.float64)
        if forces.shape != positions.shape:
            raise UserError(
                f"{path}: {f_key} has shape {forces.shape}, expected {positions.shape}"
            )
        record.forces = forces * force_factor
    elif forces_key is not None:
        raise UserError(
            f"{path}: no forces key {f_key!r}; keys are {sorted(archive)}"
        )
    else:
        logger.warning("%s: no forces key %r; frames have no forces", path, f_key)
    if "theory" in archive:
        record.attrs["level_of_theory"] = str(archive["theory"])
    for key in sorted(set(archive) - {pos_key, z_key, e_key, f_key} - _IGNORED):
        logger.warning("%s: array %r is not stored", path, key)
    return [record]
