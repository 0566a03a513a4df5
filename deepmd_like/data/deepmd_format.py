"""DeePMD-kit ``npy``/``raw`` systems: reading them in and writing them out.

A DeePMD system is a folder with ``type.raw`` (a type index per atom),
``type_map.raw`` (the element of each type index) and either ``set.*/``
folders of ``.npy`` arrays or ``.raw`` text files beside ``type.raw``:
``coord`` (n_frames, 3 n_atoms), ``box`` (n_frames, 9; absent, with a
``nopbc`` marker, for molecules), ``energy`` (n_frames,), ``force`` (n_frames,
3 n_atoms) and ``virial`` (n_frames, 9). Types are turned into atomic numbers
through the type map on the way in, so the order of a type map does not
matter; only atomic numbers are stored.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.data import atomic_numbers as _ATOMIC_NUMBERS
from ase.data import chemical_symbols

from deepmd_like.data.records import SystemRecord, unique_names
from deepmd_like.errors import UserError
from deepmd_like.fileio import fsync_dir, temporary_beside

logger = logging.getLogger(__name__)

_KNOWN = {"coord", "box", "energy", "force", "virial"}
_IGNORED_FILES = {"type.raw", "type_map.raw", "nopbc"}


def is_deepmd_system(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder holding a DeePMD system (``type.raw``)."""
    return (Path(path) / "type.raw").is_file()


def find_deepmd_systems(path: str | os.PathLike) -> list[Path]:
    """``path`` itself if it is a system, else every system below it, sorted."""
    path = Path(path)
    if is_deepmd_system(path):
        return [path]
    found = sorted(p.parent for p in path.rglob("type.raw"))
    if not found:
        raise UserError(
            f"{path}: no DeePMD system found (a folder with type.raw); "
            "check the path or pass --format"
        )
    return found


def _element_numbers(names: Sequence[str], source: str) -> np.ndarray:
    numbers = []
    for name in names:
        if name not in _ATOMIC_NUMBERS:
            raise UserError(
                f"{source}: type map entry {name!r} is not a chemical element; "
                "pass --type-map with element symbols, e.g. --type-map O,H"
            )
        numbers.append(_ATOMIC_NUMBERS[name])
    return np.array(numbers, dtype=np.int64)


def _load(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, ndmin=2)
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: cannot be read ({err})") from None


def _frame_blocks(system: Path) -> list[tuple[Path, str]]:
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if sets:
        return [(folder, ".npy") for folder in sets]
    if (system / "coord.raw").is_file():
        return [(system, ".raw")]
    raise UserError(f"{system}: no set.* folders and no coord.raw")


def read_deepmd_system(
    system: str | os.PathLike,
    type_map: Sequence[str] | None = None,
    energy_factor: float = 1.0,
    length_factor: float = 1.0,
    force_factor: float = 1.0,
    name: str | None = None,
) -> SystemRecord:
    """Read one DeePMD system folder.

    Parameters
    ----------
    system : the folder (holds ``type.raw``).
    type_map : element of each type index; overrides ``type_map.raw``.
    energy_factor, length_factor, force_factor : source unit to eV, Å, eV/Å.
        The virial is an energy and uses ``energy_factor``.
    name : system name (default: the folder's name).
    """
    system = Path(system)
    types = np.loadtxt(system / "type.raw", dtype=np.int64, ndmin=1)
    if type_map is None:
        map_file = system / "type_map.raw"
        if not map_file.is_file():
            raise UserError(
                f"{system}: no type_map.raw; pass --type-map with the element of "
                "each type index, e.g. --type-map O,H"
            )
        type_map = map_file.read_text().split()
    type_numbers = _element_numbers(type_map, str(system))
    if types.size and (types.min() < 0 or types.max() >= len(type_numbers)):
        raise UserError(
            f"{system}/type.raw: type index {int(types.max())} has no entry in the "
            f"type map {list(type_map)}"
        )
    atomic_numbers = type_numbers[types]
    n_atoms = atomic_numbers.shape[0]
    periodic = not (system / "nopbc").exists()

    columns: dict[str, list] = {k: [] for k in _KNOWN}
    masks: dict[str, list] = {k: [] for k in ("energy", "force", "virial")}
    warned: set[str] = set()
    for folder, suffix in _frame_blocks(system):
        coord = _load(folder / f"coord{suffix}")
        n_frames = coord.shape[0]
        if coord.shape != (n_frames, 3 * n_atoms):
            raise UserError(
                f"{folder}/coord{suffix}: shape {coord.shape}, expected "
                f"(n_frames, {3 * n_atoms}) for {n_atoms} atoms in type.raw"
            )
        columns["coord"].append(coord.reshape(n_frames, n_atoms, 3))
        for key, width in (("box", 9), ("energy", 1), ("force", 3 * n_atoms),
                           ("virial", 9)):
            file = folder / f"{key}{suffix}"
            if not file.is_file():
                if key == "box" and periodic:
                    raise UserError(
                        f"{folder}: no box{suffix} and no 'nopbc' marker in "
                        f"{system}; add the box or the marker"
                    )
                if key in masks:
                    masks[key].append(np.zeros(n_frames, bool))
                    columns[key].append(np.full((n_frames, width), np.nan))
                continue
            value = _load(file).reshape(n_frames, -1) if key != "energy" else (
                _load(file).reshape(-1, 1)
            )
            if value.shape != (n_frames, width):
                raise UserError(
                    f"{file}: shape {value.shape}, expected ({n_frames}, {width})"
                    + (f" for {n_atoms} atoms" if key == "force" else "")
                )
            columns[key].append(value)
            if key in masks:
                masks[key].append(np.ones(n_frames, bool))
        for extra in sorted(folder.glob(f"*{suffix}")):
            stem = extra.name[: -len(suffix)]
            if stem not in _KNOWN and extra.name not in _IGNORED_FILES:
                if stem not in warned:
                    logger.warning(
                        "%s: %s is not a label this format stores; it is skipped",
                        system, extra.name,
                    )
                    warned.add(stem)

    positions = np.concatenate(columns["coord"]).astype(np.float64) * length_factor
    n_frames = positions.shape[0]
    record = SystemRecord(
        name=name or system.name,
        atomic_numbers=atomic_numbers,
        positions=positions,
        pbc=np.full(3, periodic),
        attrs={
            "source": str(system),
            "source_format": "deepmd",
            "type_map": list(type_map),
        },
    )
    if columns["box"]:
        record.cell = (
            np.concatenate(columns["box"]).astype(np.float64).reshape(n_frames, 3, 3)
            * length_factor
        )
    for key, attr, factor, shape in (
        ("energy", "energy", energy_factor, (n_frames,)),
        ("force", "forces", force_factor, (n_frames, n_atoms, 3)),
        ("virial", "virial", energy_factor, (n_frames, 3, 3)),
    ):
        mask = np.concatenate(masks[key])
        if not mask.any():
            continue
        value = np.concatenate(columns[key]).astype(np.float64).reshape(shape)
        setattr(record, attr, value * factor)
        setattr(record, f"has_{attr}", mask)
    if record.energy is None:
        logger.warning("%s: no energy.npy/energy.raw; frames are unlabelled", system)
    return record


def read_deepmd(
    paths: Sequence[str | os.PathLike],
    type_map: Sequence[str] | None = None,
    energy_factor: float = 1.0,
    length_factor: float = 1.0,
    force_factor: float = 1.0,
) -> list[SystemRecord]:
    """Read every DeePMD system found at or below ``paths``.

    Systems are named after their folders (``data_0``, ...); clashing names
    get a suffix.
    """
    records = []
    for path in paths:
        for system in find_deepmd_systems(path):
            records.append(
                read_deepmd_system(
                    system, type_map, energy_factor, length_factor, force_factor
                )
            )
    unique_names(records)
    return records


# Export ------------------------------------------------------------------------
def _type_map_for(system_attrs: dict, numbers: np.ndarray) -> list[str]:
    stored = system_attrs.get("type_map")
    present = [chemical_symbols[z] for z in dict.fromkeys(numbers.tolist())]
    if isinstance(stored, (list, tuple)) and set(present) <= set(stored):
        return list(stored)
    return present


def _runs(masks: np.ndarray) -> list[tuple[int, int]]:
    """Split frames into runs where every mask keeps its value."""
    n = masks.shape[0]
    if n == 0:
        return []
    change = np.flatnonzero((masks[1:] != masks[:-1]).any(axis=1)) + 1
    edges = [0, *change.tolist(), n]
    return list(zip(edges[:-1], edges[1:]))


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything but an earlier DeePMD export."""
    here = Path.cwd()
    if out_dir == here or out_dir in here.parents or out_dir.parent == out_dir:
        raise UserError(
            f"{out_dir}: is the current folder or above it; export into a new "
            "folder"
        )
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder; choose another -o")
    for entry in out_dir.iterdir():
        if not (entry.is_dir() and (entry / "type.raw").is_file()):
            raise UserError(
                f"{out_dir}: holds {entry.name!r}, which is not a DeePMD system; "
                "--overwrite replaces only an earlier export, choose another -o"
            )


def write_deepmd(
    dataset, out_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write every system of ``dataset`` as DeePMD npy systems under ``out_dir``.

    One folder per system, named after it. Arrays are float64 (values exactly
    as stored). Frames are grouped into ``set.NNN`` folders of consecutive
    frames that carry the same labels, so a frame without forces never gets
    a zero force. The folder appears whole or not at all.
    """
    from deepmd_like.data.publish import prepare_folder

    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not overwrite:
        raise UserError(f"{out_dir} already exists; pass --overwrite to replace it")
    if out_dir.exists():
        _check_replaceable(out_dir)
    prepare_folder(out_dir.parent)
    tmp = temporary_beside(out_dir, "", directory=True)
    try:
        for info in dataset.systems:
            data = dataset.read_system(info.name)
            folder = tmp / info.name
            folder.mkdir()
            type_map = _type_map_for(info.attrs, info.atomic_numbers)
            index = {_ATOMIC_NUMBERS[s]: i for i, s in enumerate(type_map)}
            types = np.array([index[z] for z in info.atomic_numbers.tolist()])
            np.savetxt(folder / "type.raw", types, fmt="%d")
            (folder / "type_map.raw").write_text("\n".join(type_map) + "\n")
            if not info.pbc.any():
                (folder / "nopbc").touch()
            masks = np.stack(
                [data["has_energy"], data["has_forces"], data["has_virial"]], axis=1
            )
            for number, (start, stop) in enumerate(_runs(masks)):
                sub = folder / f"set.{number:03d}"
                sub.mkdir()
                count = stop - start
                part = slice(start, stop)
                np.save(sub / "coord.npy", data["positions"][part].reshape(count, -1))
                if "cell" in data:
                    np.save(sub / "box.npy", data["cell"][start:stop].reshape(count, 9))
                if masks[start, 0]:
                    np.save(sub / "energy.npy", data["energy"][start:stop])
                if masks[start, 1]:
                    np.save(sub / "force.npy", data["forces"][part].reshape(count, -1))
                if masks[start, 2]:
                    np.save(sub / "virial.npy", data["virial"][part].reshape(count, 9))
        if out_dir.exists():
            trash = Path(
                tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent)
            )
            os.replace(out_dir, trash / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
