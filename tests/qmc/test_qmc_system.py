"""Molecules from user input: units, charge and spin, electron placement."""

import itertools

import pytest
import torch
from ase.data import atomic_numbers

from deepmd_like.errors import UserError
from deepmd_like.qmc.system import assign_electrons, initial_walkers, make_molecule


def test_angstrom_is_converted_to_bohr():
    molecule = make_molecule([["H", 0, 0, 0], ["H", 0, 0, 0.74]], "angstrom")
    assert abs(molecule.positions[1][2] - 0.74 / 0.529177210903) < 1e-6
    assert molecule.formula() == "H2"
    assert abs(molecule.nuclear_repulsion() - 1 / molecule.positions[1][2]) < 1e-12


@pytest.mark.parametrize(
    "atoms, unit, charge, spin, message",
    [
        ([["H", 0, 0, 0]], None, 0, 1, "no unit"),
        ([["H", 0, 0, 0]], "furlong", 0, 1, "unknown length unit"),
        ([["Xx", 0, 0, 0]], "bohr", 0, 1, "unknown element 'Xx'"),
        ([["H", 0, 0, 0], ["H", 0, 0, 1.4]], "bohr", 0, 1, "spin"),
        ([["H", 0, 0, 0]], "bohr", 1, 0, "at least one electron"),
        ([["He", 0, 0, 0]], "bohr", 0, 4, "spin"),
        ([["H", 0, 0, 0], ["H", 0, 0, 0]], "bohr", 0, 0, "coincide"),
    ],
)
def test_bad_molecules_are_refused_with_a_reason(atoms, unit, charge, spin, message):
    with pytest.raises(UserError, match=message):
        make_molecule(atoms, unit, charge, spin)


def test_high_spin_oxygen_assignment():
    o2 = make_molecule([["O", 0, 0, 0], ["O", 0, 0, 2.28]], "bohr", spin=2)
    up, down = assign_electrons(o2)
    assert (len(up), len(down)) == (9, 7)


@pytest.mark.parametrize(
    "symbols", [("H",), ("Li",), ("O", "O"), ("Li", "H"), ("N", "H", "H", "H")]
)
def test_every_spin_and_charge_assignment_terminates(symbols):
    atoms = [[s, 0.0, 0.0, 2.0 * i] for i, s in enumerate(symbols)]
    total = sum(atomic_numbers[s] for s in symbols)

    for charge, spin in itertools.product(range(-2, 3), range(0, total + 3)):
        try:
            molecule = make_molecule(atoms, "bohr", charge, spin)
        except UserError:
            continue
        up, down = assign_electrons(molecule)
        assert len(up) == molecule.n_up and len(down) == molecule.n_down
        assert len(up) - len(down) == spin


def test_initial_walkers_sit_around_their_nuclei():
    lih = make_molecule([["Li", 0, 0, 0], ["H", 0, 0, 3.015]], "bohr")
    walkers = initial_walkers(lih, 500, torch.Generator().manual_seed(0), width=0.3)
    assert walkers.shape == (500, 4, 3)
    up, down = assign_electrons(lih)
    centres = torch.tensor([lih.positions[i] for i in up + down])
    assert (walkers.mean(0) - centres).abs().max() < 0.1
