"""Raw VASP and QE outputs convert to dpdata's reference arrays."""

from __future__ import annotations

import numpy as np
import pytest

from deepmd_like.data.converters import read_source, ConvertOptions


def _one(path):
    (record,) = read_source(path, ConvertOptions())
    return record


def test_vasp_outcar_matches_dpdata(shared_data):
    folder = shared_data / "dft_outputs" / "vasp"
    ref = folder / "expected_dpdata" / "OUTCAR.h2o.md"
    record = _one(folder / "OUTCAR.h2o.md")
    n = record.n_frames
    assert n == 3 and record.pbc.all()
    types = np.loadtxt(ref / "type.raw", dtype=int)
    np.testing.assert_array_equal(record.atomic_numbers, np.array([8, 1])[types])
    np.testing.assert_allclose(record.energy, np.loadtxt(ref / "energy.raw"), rtol=1e-6)
    np.testing.assert_allclose(
        record.forces, np.loadtxt(ref / "force.raw").reshape(n, -1, 3),
        rtol=1e-6, atol=1e-6,
    )
    np.testing.assert_allclose(
        record.positions, np.loadtxt(ref / "coord.raw").reshape(n, -1, 3), atol=1e-6
    )
    np.testing.assert_allclose(
        record.cell, np.loadtxt(ref / "box.raw").reshape(n, 3, 3), atol=1e-6
    )
    virial = np.loadtxt(ref / "virial.raw").reshape(n, 3, 3)
    np.testing.assert_allclose(
        record.virial, virial, rtol=3e-3, atol=3e-3 * np.abs(virial).max()
    )


# dpdata's energies for the three pw.x runs, from the folder's PROVENANCE.md.
QE_CASES = [
    ("01.out", -219.74425946528794, "ch4_coord", "ch4_force", "ch4_virial", None),
    ("02.out", -30007.651851226798, "h2o_coord", "h2o_force", "h2o_virial", "h2o_cell"),
    ("03.out", -219.7153691367526562, None, "ch4_force_2", None, None),
]


@pytest.mark.parametrize("name, energy, coord, force, virial, cell", QE_CASES)
def test_qe_output_matches_dpdata(
    shared_data, name, energy, coord, force, virial, cell
):
    folder = shared_data / "dft_outputs" / "qe"
    ref = folder / "expected_dpdata"
    record = _one(folder / name)
    assert record.n_frames == 1
    np.testing.assert_allclose(record.energy, [energy], rtol=1e-6)
    expected_force = np.loadtxt(ref / force)
    np.testing.assert_allclose(record.forces[0], expected_force, rtol=1e-6, atol=1e-6)
    if coord:
        expected_coord = np.loadtxt(ref / coord)
        np.testing.assert_allclose(record.positions[0], expected_coord, atol=1e-6)
    if cell:
        # pw.x prints the cell in units of alat (12.22 Å) with 6 decimals, so
        # the output itself knows it to 0.5e-6 * 12.22 Å = 6e-6 Å.
        np.testing.assert_allclose(record.cell[0], np.loadtxt(ref / cell), atol=7e-6)
    if virial:
        expected = np.loadtxt(ref / virial)
        # The reference comes from a rounded kbar column: 3e-3 relative.
        np.testing.assert_allclose(
            record.virial[0], expected, rtol=3e-3, atol=3e-3 * np.abs(expected).max()
        )
    else:
        assert record.virial is None


def test_gaussian_and_orca_in_ev(shared_data):
    from ase.units import Hartree

    gaussian = _one(shared_data / "dft_outputs" / "gaussian" / "methane.gaussianlog")
    assert gaussian.atomic_numbers.tolist() == [6, 1, 1, 1, 1]
    assert gaussian.energy[0] == pytest.approx(-1102.7146, abs=1e-4)
    orca = _one(shared_data / "dft_outputs" / "orca" / "orca.spout")
    # FINAL SINGLE POINT ENERGY in the file, in Hartree.
    assert orca.energy[0] == pytest.approx(-513.113388868587 * Hartree, rel=1e-9)
    assert orca.forces.shape == (1, 22, 3)


def test_vasprun_xml_equals_outcar(shared_data):
    folder = shared_data / "dft_outputs" / "vasp"
    xml = _one(folder / "vasprun.h2o.md.xml")
    outcar = _one(folder / "OUTCAR.h2o.md")
    np.testing.assert_allclose(xml.energy, outcar.energy, rtol=1e-9)
    np.testing.assert_allclose(xml.forces, outcar.forces, atol=1e-6)
    np.testing.assert_allclose(xml.virial, outcar.virial, rtol=1e-4, atol=1e-4)
