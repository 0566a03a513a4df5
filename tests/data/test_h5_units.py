"""Units, stress sign, label masks, type maps and unused keys on the way in."""

from __future__ import annotations

import logging

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from deepmd_like.data import Dataset
from deepmd_like.data.converters import ConvertOptions, convert, read_source

from h5_test_helpers import random_system, write_deepmd_system  # noqa: F401

# One kcal/mol in eV from its definition (4.184 kJ) and the Faraday constant
# (96.48533212 kJ/mol per eV, CODATA 2018), not from ase.units; ASE uses
# CODATA 2014, which differs by 8e-9 relative, hence rtol=1e-7 below.
KCAL_MOL_IN_EV = 4.184 / 96.48533212


def _parse_plain_extxyz(path):
    """Energies and forces of an extxyz with energy= and pos/forces columns."""
    energies, forces = [], []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        n = int(lines[i])
        header = lines[i + 1]
        energies.append(float(header.split("energy=")[1].split()[0]))
        rows = [line.split() for line in lines[i + 2 : i + 2 + n]]
        forces.append([[float(v) for v in row[4:7]] for row in rows])
        i += n + 2
    return np.array(energies), np.array(forces)


def test_rmd17_kcal_per_mol_to_ev(shared_data):
    path = shared_data / "rmd17_ethanol_100" / "ethanol_reduced_100.xyz"
    (record,) = read_source(path, ConvertOptions(energy_unit="kcal/mol"))
    energy, forces = _parse_plain_extxyz(path)
    assert record.n_frames == 100
    np.testing.assert_allclose(record.energy, energy * KCAL_MOL_IN_EV, rtol=1e-7)
    np.testing.assert_allclose(record.forces, forces * KCAL_MOL_IN_EV, rtol=1e-7)
    # Per atom about -467.7 eV (ethanol total energy / 9 atoms).
    assert -468 < record.energy.mean() / 9 < -467


def test_md17_database_kcal_per_mol_to_ev(shared_data):
    import ase.db

    path = shared_data / "md17_ethanol_schnetpack" / "test_ethanol.db"
    (record,) = read_source(path, ConvertOptions(energy_unit="kcal/mol"))
    rows = list(ase.db.connect(path).select())
    assert record.n_frames == len(rows) == 20
    energy = np.array([row.data["energy"][0] for row in rows])
    forces = np.array([row.data["forces"] for row in rows])
    np.testing.assert_allclose(record.energy, energy * KCAL_MOL_IN_EV, rtol=1e-7)
    np.testing.assert_allclose(record.forces, forces * KCAL_MOL_IN_EV, rtol=1e-7)


def _strain_virial(atoms, step=1e-5):
    """W = -dE/d(strain) by central differences, eV."""
    virial = np.zeros((3, 3))
    cell0, pos0 = atoms.cell[:].copy(), atoms.positions.copy()
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[i, j] += sign * step / 2
                strain[j, i] += sign * step / 2
                atoms.set_cell(cell0 @ strain, scale_atoms=False)
                atoms.positions = pos0 @ strain
                energies.append(atoms.get_potential_energy())
            virial[i, j] = -(energies[0] - energies[1]) / (2 * step)
    atoms.set_cell(cell0, scale_atoms=False)
    atoms.positions = pos0
    return virial


def test_extxyz_stress_becomes_minus_volume_times_stress(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    atoms.cell[0, 1] = 0.2
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_stress()
    path = tmp_path / "cu.xyz"
    ase.io.write(path, atoms, format="extxyz")
    assert "stress=" in path.read_text()
    (record,) = read_source(path, ConvertOptions())
    expected = _strain_virial(atoms)
    np.testing.assert_allclose(record.virial[0], expected, rtol=1e-4, atol=1e-4)
    volume = atoms.get_volume()
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(record.virial[0], -volume * stress, rtol=1e-6, atol=1e-8)


def test_stress_key_in_gpa(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = EMT()
    sigma = atoms.get_stress(voigt=False)  # eV/Å^3
    gpa = 160.21766208  # eV/Å^3 in GPa
    frame = atoms.copy()
    frame.info["my_energy"] = atoms.get_potential_energy()
    frame.info["my_stress"] = (sigma * gpa).ravel()
    path = tmp_path / "cu.xyz"
    ase.io.write(path, frame, format="extxyz")
    options = ConvertOptions(energy_key="my_energy", stress_key="my_stress",
                             stress_unit="GPa")
    (record,) = read_source(path, options)
    np.testing.assert_allclose(
        record.virial[0], -atoms.get_volume() * sigma, rtol=1e-6, atol=1e-9
    )


def test_unused_key_is_named_and_flag_uses_it(tmp_path, shared_data, caplog):
    path = shared_data / "carbon_gap17_100" / "carbon_reduced_100.xyz"
    with caplog.at_level(logging.WARNING):
        (plain,) = read_source(path, ConvertOptions())
    assert plain.forces is None
    assert "per-atom array 'force'" in caplog.text
    (record,) = read_source(path, ConvertOptions(forces_key="force"))
    first = ase.io.read(path, 0)
    np.testing.assert_array_equal(record.forces[0], first.arrays["force"])
    # The file's 3x3 virial info is taken as the virial (eV).
    np.testing.assert_allclose(record.virial[0], first.info["virial"])
    assert record.attrs["xc_functional"] == "LDA"


def test_missing_forces_are_masked_not_zero(tmp_path, random_system):
    r = random_system
    folder = write_deepmd_system(tmp_path / "src" / "s", r["types"], r["type_map"],
                                 r["coord"], r["energy"], r["force"], r["box"], sets=2)
    (folder / "set.001" / "force.npy").unlink()
    out = tmp_path / "s.h5"
    convert([tmp_path / "src"], out)
    import h5py

    with h5py.File(out, "r") as h5:
        stored = h5["systems/s/forces"][()]
        mask = h5["systems/s/has_forces"][()]
    assert mask.tolist() == [True] * 5 + [False] * 5
    assert np.isnan(stored[5:]).all()  # never zeros
    np.testing.assert_array_equal(stored[:5], r["force"][:5].reshape(5, 6, 3))
    dataset = Dataset(out)
    assert not bool(dataset[7]["has_forces"]) and bool(dataset[2]["has_forces"])


@pytest.mark.parametrize("type_map", [["H", "O"], ["C", "H", "N", "O"], ["O", "H"]])
def test_type_map_order_and_subset(tmp_path, random_system, type_map):
    r = random_system
    symbols = [r["type_map"][t] for t in r["types"]]
    types = [type_map.index(s) for s in symbols]
    write_deepmd_system(tmp_path / "src" / "s", types, type_map, r["coord"],
                        r["energy"], r["force"], r["box"])
    out = tmp_path / "s.h5"
    convert([tmp_path / "src"], out)
    np.testing.assert_array_equal(Dataset(out).systems[0].atomic_numbers, r["numbers"])


def test_type_map_flag_overrides_missing_file(tmp_path, random_system):
    r = random_system
    folder = write_deepmd_system(tmp_path / "src" / "s", r["types"], r["type_map"],
                                 r["coord"], r["energy"], r["force"], r["box"])
    (folder / "type_map.raw").unlink()
    out = tmp_path / "s.h5"
    convert([tmp_path / "src"], out, ConvertOptions(type_map=["O", "H"]))
    np.testing.assert_array_equal(Dataset(out).systems[0].atomic_numbers, r["numbers"])


def test_units_flags_scale_deepmd(tmp_path, random_system):
    r = random_system
    write_deepmd_system(tmp_path / "src" / "s", r["types"], r["type_map"], r["coord"],
                        r["energy"], r["force"], r["box"], r["virial"])
    out = tmp_path / "s.h5"
    convert([tmp_path / "src"], out,
            ConvertOptions(energy_unit="Hartree", length_unit="Bohr"))
    data = Dataset(out).read_system("s")
    hartree, bohr = 27.211386245988, 0.529177210903  # CODATA 2018
    np.testing.assert_allclose(data["energy"], r["energy"] * hartree, rtol=1e-8)
    np.testing.assert_allclose(data["positions"].reshape(10, -1), r["coord"] * bohr,
                               rtol=1e-8)
    np.testing.assert_allclose(data["forces"].reshape(10, -1),
                               r["force"] * hartree / bohr, rtol=1e-8)
    np.testing.assert_allclose(data["virial"].reshape(10, -1), r["virial"] * hartree,
                               rtol=1e-8)


def test_md17_npz_in_kcal_per_mol(tmp_path):
    rng = np.random.default_rng(4)
    positions = rng.normal(size=(5, 9, 3))
    energy = rng.normal(-97000, 5, (5, 1))
    forces = rng.normal(0, 30, (5, 9, 3))
    numbers = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    path = tmp_path / "md17_ethanol.npz"
    np.savez(path, R=positions, z=numbers, E=energy, F=forces, theory="PBE+vdW-TS")
    (record,) = read_source(path, ConvertOptions(energy_unit="kcal/mol"))
    assert record.name == "md17_ethanol"
    assert record.attrs["level_of_theory"] == "PBE+vdW-TS"
    np.testing.assert_array_equal(record.atomic_numbers, numbers)
    np.testing.assert_array_equal(record.positions, positions)
    np.testing.assert_allclose(record.energy, energy[:, 0] * KCAL_MOL_IN_EV, rtol=1e-7)
    np.testing.assert_allclose(record.forces, forces * KCAL_MOL_IN_EV, rtol=1e-7)


def test_deepmd_raw_folder_matches_outcar(shared_data):
    """dpdata's raw export of a VASP run, read with --type-map, equals the OUTCAR."""
    folder = shared_data / "dft_outputs" / "vasp"
    (raw,) = read_source(folder / "expected_dpdata" / "OUTCAR.h2o.md",
                         ConvertOptions(type_map=["O", "H"]))
    (outcar,) = read_source(folder / "OUTCAR.h2o.md", ConvertOptions())
    np.testing.assert_array_equal(raw.atomic_numbers, outcar.atomic_numbers)
    np.testing.assert_allclose(raw.energy, outcar.energy, rtol=1e-9)
    np.testing.assert_allclose(raw.forces, outcar.forces, atol=1e-6)
    assert raw.virial is not None and raw.pbc.all()


def test_unit_flags_refused_for_code_outputs(shared_data):
    from deepmd_like.errors import UserError

    path = shared_data / "dft_outputs" / "vasp" / "OUTCAR.h2o.md"
    with pytest.raises(UserError, match="ASE reads vasp-out files in eV and Å"):
        read_source(path, ConvertOptions(energy_unit="Hartree"))
    # Naming the units ASE already uses is harmless.
    (record,) = read_source(path, ConvertOptions(energy_unit="eV"))
    assert record.n_frames == 3
