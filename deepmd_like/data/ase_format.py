"""Everything ASE reads (extended XYZ, VASP, QE, Gaussian, ORCA, ASE databases).

Labels are taken from the calculator ASE attaches (``energy``/``free_energy``,
``forces``, ``stress``) or from ``info``/``arrays`` keys, whose names can be
given (``--energy-key``, ``--forces-key``, ``--stress-key``, ``--virial-key``)
for files that use non-standard names. A stress becomes a virial
``W = -V sigma`` (eV). Frames are grouped into systems of identical atoms
(same atomic numbers in the same order, same periodicity), named after the
file. A key that holds numbers but is not used is reported by a warning that
names it: nothing is dropped silently.

The extended-XYZ writer here keeps full float64 precision (17 significant
digits), unlike ASE's default of 8 decimals, so HDF5 → extxyz → HDF5 returns
the same numbers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from ase.data import chemical_symbols

from deepmd_like.data.records import SystemRecord, unique_names
from deepmd_like.errors import UserError
from deepmd_like.fileio import default_permissions

logger = logging.getLogger(__name__)

# Info/arrays keys the writer below uses, and metadata every reader ignores.
SYSTEM_KEY = "system_name"
# System attributes written with every exported frame and read back.
PROVENANCE_KEYS = ("level_of_theory", "source")
_STRUCTURE_KEYS = {"numbers", "positions", "species", "pos", "Lattice", "pbc"}


@dataclass
class LabelKeys:
    """Where to find labels when the calculator does not hold them.

    Attributes
    ----------
    energy : info key of the total energy.
    forces : arrays key of the forces.
    stress : info key of the stress (3x3, 9 or Voigt 6 values).
    virial : info key of the virial (3x3 or 9 values, energy units).
    """

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"
    virial: str = "virial"


@dataclass
class UnitFactors:
    """Factors from source units to eV, Å, eV/Å and eV/Å^3."""

    energy: float = 1.0
    length: float = 1.0
    force: float = 1.0
    stress: float = 1.0


def _as_3x3(value: Any, key: str, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size == 9:
        return array.reshape(3, 3)
    if array.size == 6:  # Voigt order xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = array
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise UserError(f"{where}: {key} has {array.size} values, expected 9 or 6")


def _numeric(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.number)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "iuf"
    )


def _metadata(value: Any) -> bool:
    return isinstance(value, (str, bool, np.bool_)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "bUS"
    )


class _Frame:
    """One structure with its labels in the file's units."""

    __slots__ = ("numbers", "positions", "cell", "pbc", "energy", "forces",
                 "virial", "system", "meta")

    def __init__(self, numbers, positions, cell, pbc, energy, forces, virial, system,
                 meta):
        self.numbers = numbers
        self.positions = positions
        self.cell = cell
        self.pbc = pbc
        self.energy = energy
        self.forces = forces
        self.virial = virial
        self.system = system
        self.meta = meta

    def group_key(self) -> tuple:
        return (self.system, self.numbers.tobytes(), tuple(self.pbc),
                self.cell is not None)


def _frame_from_atoms(
    atoms, info: dict, arrays: dict, keys: LabelKeys, units: UnitFactors,
    where: str, unused: dict[str, str],
) -> _Frame:
    results = dict(getattr(atoms.calc, "results", {}) or {})
    used_info = {keys.energy, keys.stress, keys.virial, SYSTEM_KEY}
    used_arrays = {keys.forces} | _STRUCTURE_KEYS

    energy = None
    if keys.energy in info and _numeric(info[keys.energy]):
        energy = float(np.asarray(info[keys.energy]).reshape(-1)[0])
    elif keys.energy == "energy" and "energy" in results:
        energy = float(results["energy"])
        free = results.get("free_energy")
        if free is not None and abs(float(free) - energy) > 1e-8:
            # Reported once per file by _warn_unused.
            unused["free_energy (the calculator's; 'energy' is used)"] = "info"
    elif keys.energy == "energy" and "free_energy" in results:
        energy = float(results["free_energy"])

    forces = None
    if keys.forces in arrays:
        forces = np.asarray(arrays[keys.forces], dtype=np.float64)
    elif keys.forces == "forces" and "forces" in results:
        forces = np.asarray(results["forces"], dtype=np.float64)
    if forces is not None and forces.shape != (len(atoms), 3):
        raise UserError(
            f"{where}: {keys.forces} has shape {forces.shape}, expected "
            f"({len(atoms)}, 3) for {len(atoms)} atoms"
        )

    cell = None
    if atoms.cell.rank == 3:
        cell = np.asarray(atoms.cell[:], dtype=np.float64) * units.length
    virial = None
    if keys.virial in info and _numeric(info[keys.virial]):
        virial = _as_3x3(info[keys.virial], keys.virial, where) * units.energy
    else:
        stress = None
        if keys.stress in info and _numeric(info[keys.stress]):
            stress = info[keys.stress]
        elif keys.stress == "stress" and "stress" in results:
            stress = results["stress"]
        if stress is not None:
            if cell is None:
                raise UserError(
                    f"{where}: has a stress but no cell, so the virial -V*stress "
                    "cannot be formed"
                )
            sigma = _as_3x3(stress, keys.stress, where) * units.stress
            virial = -abs(np.linalg.det(cell)) * sigma

    # Report every per-atom array and calculator result that is not used;
    # other info keys are metadata (kept as attributes when constant).
    for key in arrays:
        if key not in used_arrays:
            unused.setdefault(f"per-atom array {key!r}", "")
    taken = {"energy", "free_energy"} if keys.energy == "energy" else set()
    taken |= {"forces"} if keys.forces == "forces" else set()
    taken |= {"stress"} if keys.stress == "stress" and virial is not None else set()
    for key in results:
        if key not in taken:
            unused.setdefault(f"calculator result {key!r}", "")

    system = info.get(SYSTEM_KEY)
    return _Frame(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions=np.asarray(atoms.positions, dtype=np.float64) * units.length,
        cell=cell,
        pbc=tuple(bool(p) for p in atoms.pbc),
        energy=None if energy is None else energy * units.energy,
        forces=None if forces is None else forces * units.force,
        virial=virial,
        system=str(system) if system is not None else None,
        meta={
            key: value
            for key, value in info.items()
            if key not in used_info and (_metadata(value) or _numeric(value))
        },
    )


def _records_from_frames(
    frames: list[_Frame], path: Path, source_format: str
) -> list[SystemRecord]:
    groups: dict[tuple, list[_Frame]] = {}
    for frame in frames:
        groups.setdefault(frame.group_key(), []).append(frame)
    stem = path.name.split(".")[0] or path.name
    records = []
    for members in groups.values():
        first = members[0]
        n = len(members)
        if first.system is not None:
            name = first.system
        elif len(groups) == 1:
            name = stem
        else:
            from ase.formula import Formula

            symbols = "".join(chemical_symbols[z] for z in first.numbers)
            name = f"{stem}_{Formula(symbols).format('hill')}"
        record = SystemRecord(
            name=name,
            atomic_numbers=first.numbers,
            positions=np.stack([f.positions for f in members]),
            pbc=np.array(first.pbc),
            attrs={"source": str(path), "source_format": source_format},
        )
        if first.cell is not None:
            record.cell = np.stack([f.cell for f in members])
        _keep_constant_metadata(record, members, path)
        for label, shape in (("energy", ()), ("forces", (len(first.numbers), 3)),
                             ("virial", (3, 3))):
            mask = np.array([getattr(f, label) is not None for f in members])
            if not mask.any():
                continue
            value = np.full((n, *shape), np.nan)
            for i, frame in enumerate(members):
                if mask[i]:
                    value[i] = getattr(frame, label)
            setattr(record, label, value)
            setattr(record, f"has_{label}", mask)
            if not mask.all():
                logger.warning(
                    "%s: system %r: %d of %d frames have no %s; they are marked "
                    "unlabelled", path, name, int((~mask).sum()), n, label,
                )
        records.append(record)
    unique_names(records)
    return records


def _keep_constant_metadata(record: SystemRecord, members, path: Path) -> None:
    """Store text/boolean info that is the same in every frame as attributes."""
    keys = set().union(*(frame.meta for frame in members))
    varying = []
    for key in sorted(keys):
        values = [frame.meta.get(key) for frame in members]
        first = values[0]
        same = all(
            value is not None and np.array_equal(np.asarray(value), np.asarray(first))
            for value in values
        )
        if same and key == "source" and "source" in record.attrs:
            # An exported dataset names its original source; keep that.
            record.attrs["converted_from"] = record.attrs["source"]
            record.attrs["source"] = str(first)
        elif same and key not in record.attrs:
            value = first.tolist() if isinstance(first, np.ndarray) else first
            record.attrs[key] = value.item() if hasattr(value, "item") else value
        else:
            varying.append(key)
    if varying:
        logger.warning(
            "%s: system %r: info keys that differ between frames are not stored: "
            "%s (pass --energy-key/--stress-key/--virial-key if one is a label)",
            path, record.name, ", ".join(varying),
        )


def _warn_unused(path: Path, unused: dict[str, str], keys: LabelKeys) -> None:
    if unused:
        logger.warning(
            "%s: not stored: %s (labels are read from energy=%r, forces=%r, "
            "stress=%r, virial=%r; pass --energy-key/--forces-key/--stress-key/"
            "--virial-key to use another key)",
            path, ", ".join(unused), keys.energy, keys.forces, keys.stress,
            keys.virial,
        )


def _require_energy(
    path: Path, frames: list[_Frame], keys: LabelKeys, allow_unlabelled: bool
) -> None:
    if not frames:
        raise UserError(f"{path}: no structures found")
    if all(frame.energy is None for frame in frames) and not allow_unlabelled:
        raise UserError(
            f"{path}: no energy in any frame (looked for calculator results and "
            f"info key {keys.energy!r}); pass --energy-key with the key that "
            "holds the energy, or --allow-unlabelled to store the structures "
            "without labels"
        )


def _require_named_labels(path: Path, frames: list[_Frame], keys: LabelKeys) -> None:
    """A label key the user named must be found in some frame."""
    for flag, key, default, label in (
        ("--forces-key", keys.forces, "forces", "forces"),
        ("--stress-key", keys.stress, "stress", "virial"),
        ("--virial-key", keys.virial, "virial", "virial"),
    ):
        if key != default and all(getattr(f, label) is None for f in frames):
            raise UserError(
                f"{path}: {flag} {key!r} matches nothing in any frame; check "
                "the key name (or leave the flag out)"
            )


def read_ase(
    path: str | os.PathLike,
    ase_format: str | None = None,
    keys: LabelKeys | None = None,
    units: UnitFactors | None = None,
    allow_unlabelled: bool = False,
) -> list[SystemRecord]:
    """Read every frame of a file ASE reads.

    Parameters
    ----------
    path : the file (extxyz, OUTCAR, vasprun.xml, pw.x output, Gaussian log,
        ORCA output, ...).
    ase_format : ASE's format name; guessed by ASE when None.
    keys : label keys (defaults: ``energy``, ``forces``, ``stress``, ``virial``).
    units : source units; ASE already converts the outputs of ab initio
        codes to eV and Å, so the defaults (1.0) are right for those.
    """
    import ase.io

    path = Path(path)
    keys = keys or LabelKeys()
    units = units or UnitFactors()
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        images = list(ase.io.iread(path, index=":", format=ase_format))
    except UserError:
        raise
    except Exception as err:  # ASE raises many kinds for unreadable files
        raise UserError(
            f"{path}: ASE could not read it ({type(err).__name__}: {err}); pass "
            "--format/--ase-format if the format was guessed wrong"
        ) from None
    unused: dict[str, str] = {}
    frames = []
    for index, atoms in enumerate(images):
        where = f"{path}: frame {index}"
        frames.append(
            _frame_from_atoms(
                atoms, atoms.info, atoms.arrays, keys, units, where, unused
            )
        )
    _require_energy(path, frames, keys, allow_unlabelled)
    _require_named_labels(path, frames, keys)
    _warn_unused(path, unused, keys)
    fmt = ase_format or _guess_format(path)
    return _records_from_frames(frames, path, fmt)


def _guess_format(path: Path) -> str:
    from ase.io.formats import filetype

    try:
        return str(filetype(str(path), guess=True))
    except Exception:
        return "ase"


def read_ase_db(
    path: str | os.PathLike,
    keys: LabelKeys | None = None,
    units: UnitFactors | None = None,
    allow_unlabelled: bool = False,
) -> list[SystemRecord]:
    """Read every row of an ASE database (SQLite ``.db`` or ``.json``).

    Labels come from the row's calculator, its key-value pairs or its
    ``data`` (where MD17-style databases keep ``energy`` and ``forces``).
    """
    import ase.db

    path = Path(path)
    keys = keys or LabelKeys()
    units = units or UnitFactors()
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        rows = list(ase.db.connect(path).select())
    except Exception as err:
        raise UserError(f"{path}: not a readable ASE database ({err})") from None
    unused: dict[str, str] = {}
    frames = []
    for row in rows:
        atoms = row.toatoms()
        info = dict(row.key_value_pairs)
        arrays = {"numbers": atoms.numbers, "positions": atoms.positions}
        for key, value in dict(row.get("data", {}) or {}).items():
            value = np.asarray(value)
            if value.ndim == 2 and value.shape[0] == len(atoms):
                arrays[key] = value
            else:
                info[key] = value
        where = f"{path}: row id {row.id}"
        frames.append(
            _frame_from_atoms(atoms, info, arrays, keys, units, where, unused)
        )
    _require_energy(path, frames, keys, allow_unlabelled)
    _require_named_labels(path, frames, keys)
    _warn_unused(path, unused, keys)
    return _records_from_frames(frames, path, "ase-db")


# Export ------------------------------------------------------------------------
def _fmt(values: Iterable[float]) -> str:
    return " ".join(repr(float(v)) for v in values)


def _quotable(value) -> str:
    """A text attribute as a double-quoted extxyz value can hold it."""
    text = " ".join(str(value).split())
    return text.replace('"', "'").replace("\\", "/")


def iter_extxyz_lines(dataset) -> Iterator[str]:
    """Yield the lines of an extended-XYZ file holding every frame of ``dataset``.

    Numbers are written with 17 significant digits (exact for float64).
    Each frame's info has ``system_name``, ``energy`` (eV) and ``virial``
    (eV, 9 values) where present, and the system's ``level_of_theory`` and
    ``source``, which :func:`read_ase` restores as system attributes;
    ``forces`` (eV/Å) is a per-atom column where present. Frames without a
    label simply lack its key.
    """
    for info in dataset.systems:
        symbols = [chemical_symbols[z] for z in info.atomic_numbers]
        pbc = " ".join("T" if p else "F" for p in info.pbc)
        provenance = [
            f'{key}="{_quotable(info.attrs[key])}"'
            for key in PROVENANCE_KEYS
            if key in info.attrs
        ]
        for start, block in dataset.iter_blocks(info.name, 1024):
            for row in range(block["positions"].shape[0]):
                with_forces = bool(block["has_forces"][row])
                head = [f'{SYSTEM_KEY}={info.name}']
                if "cell" in block:
                    head.append(f'Lattice="{_fmt(block["cell"][row].ravel())}"')
                props = "species:S:1:pos:R:3" + (":forces:R:3" if with_forces else "")
                head.append(f"Properties={props}")
                if block["has_energy"][row]:
                    head.append(f"energy={float(block['energy'][row])!r}")
                if block["has_virial"][row]:
                    # ASE reads a 9-value info entry column by column.
                    virial = block["virial"][row].ravel(order="F")
                    head.append(f'virial="{_fmt(virial)}"')
                head.append(f'pbc="{pbc}"')
                head.extend(provenance)
                yield str(info.n_atoms)
                yield " ".join(head)
                positions = block["positions"][row]
                forces = block["forces"][row] if with_forces else None
                for atom, symbol in enumerate(symbols):
                    line = f"{symbol} {_fmt(positions[atom])}"
                    if forces is not None:
                        line += f" {_fmt(forces[atom])}"
                    yield line


def write_extxyz(dataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write every frame of ``dataset`` to an extended-XYZ file, atomically."""
    from deepmd_like.data.publish import publish_path

    with publish_path(path, overwrite, suffix=".xyz") as tmp:
        with open(tmp, "w") as handle:
            for line in iter_extxyz_lines(dataset):
                handle.write(line + "\n")
        default_permissions(tmp)
    return Path(path)
