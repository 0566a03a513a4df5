"""Converting sources of any supported format into one HDF5 dataset.

Formats (``--format``): ``deepmd`` (npy/raw system folders), ``extxyz`` (and
``ase``: every format ASE reads, including VASP OUTCAR/vasprun.xml, QE pw.x
output, Gaussian logs and ORCA output), ``db`` (ASE databases), ``npz``
(MD17-style archives) and ``h5`` (datasets of this format). ``auto`` picks
by what the path is: a folder is DeePMD, ``.npz`` is npz, ``.db`` is an ASE
database, ``.h5``/``.hdf5`` is a dataset, anything else goes to ASE.

Units are converted on the way in. Without flags a source is taken to be in
eV and Å; a force unit not given follows the energy and length units
(``--energy-unit kcal/mol`` alone means kcal/mol/Å forces), and so does a
stress unit (energy/length^3).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from deepmd_like import units as _units
from deepmd_like.data.records import SystemRecord, unique_names, write_records
from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)

FORMATS = ("auto", "deepmd", "extxyz", "ase", "db", "npz", "h5")
# ASE formats whose readers already convert to eV and Å.
_CODE_OUTPUTS = {
    "vasp-out", "vasp-xml", "espresso-out", "gaussian-out", "orca-output",
    "castep-castep", "aims-output", "gpaw-out", "cp2k-restart",
}


@dataclass
class ConvertOptions:
    """How to read sources: format, units and label keys.

    Attributes
    ----------
    format : one of :data:`FORMATS`.
    ase_format : ASE's name of the format, when ``format`` is ``ase``
        (guessed by ASE when None).
    energy_unit, length_unit, force_unit, stress_unit : source units
        (None: eV, Å, energy/length, energy/length^3).
    energy_key, forces_key, stress_key, virial_key : label key names for
        ASE-read files and databases (npz: energy and forces keys).
    type_map : element of each DeePMD type index (overrides type_map.raw).
    level_of_theory : stored as every system's ``level_of_theory``.
    allow_unlabelled : accept a source without any energy (structures only,
        e.g. for labelling later); otherwise that is an error.
    """

    format: str = "auto"
    ase_format: str | None = None
    energy_unit: str | None = None
    length_unit: str | None = None
    force_unit: str | None = None
    stress_unit: str | None = None
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"
    virial_key: str = "virial"
    type_map: list[str] | None = None
    level_of_theory: str | None = None
    allow_unlabelled: bool = False
    extra_attrs: dict = field(default_factory=dict)

    def factors(self):
        """Return :class:`~deepmd_like.data.ase_format.UnitFactors`."""
        from deepmd_like.data.ase_format import UnitFactors

        energy = _units.energy_factor(self.energy_unit or "eV")
        length = _units.length_factor(self.length_unit or "Angstrom")
        force = (
            _units.force_factor(self.force_unit)
            if self.force_unit
            else energy / length
        )
        stress = (
            _units.stress_factor(self.stress_unit)
            if self.stress_unit
            else energy / length**3
        )
        return UnitFactors(energy=energy, length=length, force=force, stress=stress)

    @property
    def units_given(self) -> bool:
        return any(
            (self.energy_unit, self.length_unit, self.force_unit, self.stress_unit)
        )


def detect_format(path: Path) -> str:
    """Guess the converter for ``path`` (see the module notes)."""
    if path.is_dir():
        return "deepmd"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix == ".db":
        return "db"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    return "ase"


def read_source(path: str | os.PathLike, options: ConvertOptions) -> list[SystemRecord]:
    """Read one source into systems in eV and Å."""
    from deepmd_like.data import ase_format, deepmd_format, npz_format
    from deepmd_like.data.reader import parse_data_reference

    path = Path(path)
    if not path.exists():
        file, names = parse_data_reference(path)
        if names is not None and file.is_file():
            if options.format not in ("auto", "h5"):
                raise UserError(
                    f"{path}: FILE:SYSTEM references are for HDF5 datasets; "
                    f"--format {options.format} reads a whole file"
                )
            if options.units_given:
                raise UserError(
                    f"{file}: datasets are in eV and Å already; drop the unit flags"
                )
            return read_dataset_records(path)
        raise UserError(f"{path}: no such file or folder")
    if options.format not in FORMATS:
        raise UserError(
            f"unknown --format {options.format!r}; use one of {', '.join(FORMATS)}"
        )
    fmt = detect_format(path) if options.format == "auto" else options.format
    units = options.factors()
    keys = ase_format.LabelKeys(
        energy=options.energy_key,
        forces=options.forces_key,
        stress=options.stress_key,
        virial=options.virial_key,
    )
    if fmt == "deepmd":
        if not path.is_dir():
            raise UserError(f"{path}: a DeePMD system is a folder, this is a file")
        records = deepmd_format.read_deepmd(
            [path], options.type_map, units.energy, units.length, units.force
        )
        unlabelled = [r for r in records if r.energy is None]
        if unlabelled and not options.allow_unlabelled:
            source = unlabelled[0].attrs.get("source", path)
            raise UserError(
                f"{source}: no energy.npy/energy.raw in any set; pass "
                "--allow-unlabelled to store the structures without labels"
            )
        return records
    if path.is_dir():
        raise UserError(f"{path}: is a folder; --format {fmt} reads a file")
    if fmt == "npz":
        return npz_format.read_npz(
            path, units.energy, units.length, units.force,
            energy_key=None if options.energy_key == "energy" else options.energy_key,
            forces_key=None if options.forces_key == "forces" else options.forces_key,
        )
    if fmt == "db":
        return ase_format.read_ase_db(
            path, keys, units, allow_unlabelled=options.allow_unlabelled
        )
    if fmt == "h5":
        if options.units_given:
            raise UserError(
                f"{path}: datasets are in eV and Å already; drop the unit flags"
            )
        return read_dataset_records(path)
    ase_name = options.ase_format or ("extxyz" if fmt == "extxyz" else None)
    scaled = (units.energy, units.length, units.force, units.stress) != (1, 1, 1, 1)
    if scaled:
        guessed = ase_name or ase_format._guess_format(path)
        if guessed in _CODE_OUTPUTS:
            raise UserError(
                f"{path}: ASE reads {guessed} files in eV and Å already; drop the "
                "unit flags"
            )
    return ase_format.read_ase(
        path, ase_name, keys, units, allow_unlabelled=options.allow_unlabelled
    )


def read_dataset_records(path: str | os.PathLike) -> list[SystemRecord]:
    """Read every system of a dataset file into memory."""
    from deepmd_like.data.reader import Dataset

    dataset = Dataset(path)
    records = []
    for info in dataset.systems:
        data = dataset.read_system(info.name)
        record = SystemRecord(
            name=info.name,
            atomic_numbers=info.atomic_numbers,
            positions=data["positions"],
            cell=data.get("cell"),
            pbc=info.pbc,
            attrs=dict(info.attrs),
        )
        for label in ("energy", "forces", "virial"):
            if label in data:
                setattr(record, label, data[label])
                setattr(record, f"has_{label}", data[f"has_{label}"])
        records.append(record)
    dataset.close()
    return records


def convert(
    sources: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    options: ConvertOptions | None = None,
    overwrite: bool = False,
) -> list[SystemRecord]:
    """Convert ``sources`` into the dataset ``output`` (written atomically).

    Returns the systems written. Systems keep their source names; a clash
    gets a numeric suffix.
    """
    from deepmd_like.data.publish import check_destination

    options = options or ConvertOptions()
    output = check_destination(output, overwrite)
    records: list[SystemRecord] = []
    for source in sources:
        records.extend(read_source(source, options))
    unique_names(records)
    for record in records:
        if options.level_of_theory:
            record.attrs["level_of_theory"] = options.level_of_theory
        record.attrs.update(options.extra_attrs)
        record.attrs.setdefault("units_in", _describe_units(options))
    write_records(records, output, overwrite=overwrite)
    logger.debug(
        "wrote %s: %d systems, %d frames", output, len(records),
        sum(r.n_frames for r in records),
    )
    return records


def _describe_units(options: ConvertOptions) -> str:
    return (
        f"energy {options.energy_unit or 'eV'}, length "
        f"{options.length_unit or 'Angstrom'}, force "
        f"{options.force_unit or 'energy/length'}, stress "
        f"{options.stress_unit or 'energy/length^3'}"
    )
