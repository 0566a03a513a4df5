"""The HDF5 dataset format, version 1: names, checks, and the system record.

Layout (every array float64 unless noted; units eV, Å, eV/Å, virial in eV)::

    /                       attrs: format = "deepmd_like/dataset", version = 1,
                                   energy_unit = "eV", length_unit = "Angstrom"
    /systems/<name>/
        atomic_numbers      (n_atoms,)              int64
        positions           (n_frames, n_atoms, 3)
        energy              (n_frames,)             total energy
        forces              (n_frames, n_atoms, 3)  optional
        cell                (n_frames, 3, 3)        rows are lattice vectors;
                                                    absent = no box
        pbc                 (3,)                    bool
        virial              (n_frames, 3, 3)        optional, W = -V sigma
        has_energy          (n_frames,)  bool       optional; absent = all
        has_forces          (n_frames,)  bool       optional; absent = all
        has_virial          (n_frames,)  bool       optional; absent = all
        attrs: level_of_theory, source, and anything else known

Unlabelled frames (an MD frame with no energy, a frame whose source gave no
forces) are marked ``False`` in the matching ``has_*`` mask and their values
are stored as NaN, never as zeros: a reader that ignored the mask would fail
loudly instead of learning a zero force. Every check of finiteness looks only
at labelled frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from deepmd_like.errors import UserError

FORMAT_NAME = "deepmd_like/dataset"
FORMAT_VERSION = 1
ENERGY_UNIT = "eV"
LENGTH_UNIT = "Angstrom"
ROOT_ATTRS = {
    "format": FORMAT_NAME,
    "version": FORMAT_VERSION,
    "energy_unit": ENERGY_UNIT,
    "length_unit": LENGTH_UNIT,
    "force_unit": "eV/Angstrom",
    "virial_unit": "eV",
}
SYSTEMS = "systems"

# Per-frame arrays: name -> trailing shape given n_atoms.
FRAME_ARRAYS = {
    "positions": lambda n: (n, 3),
    "energy": lambda n: (),
    "forces": lambda n: (n, 3),
    "cell": lambda n: (3, 3),
    "virial": lambda n: (3, 3),
}
# Label arrays and the mask that says which frames carry them.
LABEL_MASKS = {"energy": "has_energy", "forces": "has_forces", "virial": "has_virial"}
MASKS = tuple(LABEL_MASKS.values())
MAX_ATOMIC_NUMBER = 118


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [_text(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class SystemInfo:
    """What a reader knows about one system without loading its frames.

    Attributes
    ----------
    name : the system's name in the file.
    n_frames : number of frames.
    n_atoms : atoms per frame.
    atomic_numbers : (n_atoms,) int64.
    pbc : (3,) bool, periodic directions.
    has_cell : True if frames carry a cell.
    labels : names among ``energy``, ``forces``, ``virial`` stored at all.
    masks : names among ``has_energy``, ``has_forces``, ``has_virial`` stored.
    attrs : the system's attributes (``level_of_theory``, ``source``, ...).
    """

    name: str
    n_frames: int
    n_atoms: int
    atomic_numbers: np.ndarray
    pbc: np.ndarray
    has_cell: bool
    labels: tuple[str, ...]
    masks: tuple[str, ...]
    attrs: dict = field(default_factory=dict)

    @property
    def has_forces(self) -> bool:
        """True if any frame of the system has forces."""
        return "forces" in self.labels

    @property
    def has_virial(self) -> bool:
        """True if any frame of the system has a virial."""
        return "virial" in self.labels

    @property
    def formula(self) -> str:
        """Chemical formula in Hill order, e.g. ``H128O64``."""
        from ase.formula import Formula
        from ase.data import chemical_symbols

        symbols = "".join(chemical_symbols[z] for z in self.atomic_numbers)
        return Formula(symbols).format("hill")


def check_root(h5: h5py.File, path: str) -> None:
    """Refuse a file that is not a dataset of a version this code reads."""
    attrs = h5.attrs
    if _text(attrs.get("format")) != FORMAT_NAME:
        raise UserError(
            f"{path}: not a deepmd_like dataset (root attribute format = "
            f"{_text(attrs.get('format'))!r}, expected {FORMAT_NAME!r}); convert "
            "the data with 'dpl data convert'"
        )
    version = attrs.get("version")
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise UserError(
            f"{path}: root attribute version = {version!r} is not an integer"
        )
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path}: dataset format version {version} is newer than this "
            f"deepmd_like reads (up to {FORMAT_VERSION}); upgrade deepmd_like"
        )
    if version < 1:
        raise UserError(f"{path}: dataset format version {version} is not valid")
    for key, expected in (("energy_unit", ENERGY_UNIT), ("length_unit", LENGTH_UNIT)):
        value = _text(attrs.get(key))
        if value != expected:
            raise UserError(
                f"{path}: root attribute {key} = {value!r}, expected {expected!r}; "
                "files store eV and Angstrom (converters convert on the way in)"
            )
    if SYSTEMS not in h5:
        raise UserError(f"{path}: no /{SYSTEMS} group")


def read_system_info(group: h5py.Group, path: str) -> SystemInfo:
    """Validate the shapes and dtypes of one system group and describe it."""
    name = group.name.rsplit("/", 1)[-1]
    where = f"{path}: system {name!r}"
    for key in ("atomic_numbers", "positions", "energy", "pbc"):
        if key not in group:
            raise UserError(f"{where}: required dataset {key!r} is missing")
    numbers = group["atomic_numbers"]
    if numbers.ndim != 1 or numbers.dtype.kind not in "iu":
        raise UserError(
            f"{where}: atomic_numbers must be a 1-d integer array, got shape "
            f"{numbers.shape} dtype {numbers.dtype}"
        )
    atomic_numbers = numbers[()].astype(np.int64)
    bad = np.flatnonzero((atomic_numbers < 1) | (atomic_numbers > MAX_ATOMIC_NUMBER))
    if bad.size:
        raise UserError(
            f"{where}: atoms {bad[:10].tolist()} have invalid atomic numbers "
            f"{atomic_numbers[bad[:10]].tolist()}"
        )
    n_atoms = atomic_numbers.shape[0]
    positions = group["positions"]
    if positions.ndim != 3 or positions.shape[1:] != (n_atoms, 3):
        raise UserError(
            f"{where}: positions have shape {positions.shape}, expected "
            f"(n_frames, {n_atoms}, 3) to match atomic_numbers ({n_atoms} atoms)"
        )
    n_frames = positions.shape[0]
    labels = []
    for key, trailing in FRAME_ARRAYS.items():
        if key not in group:
            continue
        dset = group[key]
        expected = (n_frames, *trailing(n_atoms))
        if dset.shape != expected:
            raise UserError(
                f"{where}: {key} has shape {dset.shape}, expected {expected}"
            )
        if dset.dtype.kind != "f":
            raise UserError(
                f"{where}: {key} has dtype {dset.dtype}, expected float64"
            )
        if key in LABEL_MASKS:
            labels.append(key)
    masks = []
    for label, mask in LABEL_MASKS.items():
        if mask not in group:
            continue
        dset = group[mask]
        if dset.shape != (n_frames,) or dset.dtype.kind != "b":
            raise UserError(
                f"{where}: {mask} must be ({n_frames},) bool, got shape "
                f"{dset.shape} dtype {dset.dtype}"
            )
        if label not in group:
            raise UserError(f"{where}: {mask} is present but {label} is not")
        masks.append(mask)
    pbc = group["pbc"][()]
    if np.shape(pbc) != (3,):
        raise UserError(f"{where}: pbc has shape {np.shape(pbc)}, expected (3,)")
    pbc = np.asarray(pbc, dtype=bool)
    has_cell = "cell" in group
    if pbc.any() and not has_cell:
        raise UserError(f"{where}: pbc is {pbc.tolist()} but there is no cell")
    attrs = {key: _text(value) for key, value in group.attrs.items()}
    return SystemInfo(
        name=name,
        n_frames=int(n_frames),
        n_atoms=int(n_atoms),
        atomic_numbers=atomic_numbers,
        pbc=pbc,
        has_cell=has_cell,
        labels=tuple(labels),
        masks=tuple(masks),
        attrs=attrs,
    )


def check_frame_finite(
    frame: dict[str, np.ndarray], path: str, system: str, index: int
) -> None:
    """Raise naming file, system, frame and atoms if a used value is not finite.

    ``frame`` holds one frame's arrays; labels whose mask is False are
    skipped (they are stored as NaN by design).
    """
    for key in ("positions", "cell", "energy", "forces", "virial"):
        if key not in frame:
            continue
        mask = LABEL_MASKS.get(key)
        if mask is not None and not bool(frame.get(mask, True)):
            continue
        value = np.asarray(frame[key])
        finite = np.isfinite(value)
        if finite.all():
            continue
        where = f"{path}: system {system!r} frame {index}: non-finite {key}"
        if key in ("positions", "forces"):
            atoms = np.flatnonzero(~finite.all(axis=-1))
            where += f" on atoms {atoms[:10].tolist()}"
        raise UserError(where)


def check_block_finite(block: dict, path: str, system: str, first: int) -> None:
    """Like :func:`check_frame_finite` for a block of frames from ``first``.

    Checks the whole block with a few array operations and names the first
    bad frame (and its atoms) if there is one.
    """
    n = block["positions"].shape[0]
    bad = np.zeros(n, bool)
    for key in ("positions", "cell", "energy", "forces", "virial"):
        if key in block:
            finite = np.isfinite(block[key].reshape(n, -1)).all(axis=1)
            used = block.get(LABEL_MASKS.get(key, ""))
            bad |= ~finite if used is None else used & ~finite
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        frame = {
            key: value[row]
            for key, value in block.items()
            if key not in ("atomic_numbers", "pbc")
        }
        check_frame_finite(frame, path, system, first + row)
