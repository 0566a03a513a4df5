"""Lennard-Jones and sums of potentials: analytic derivatives against
autograd and finite differences, cutoff behaviour, element checks."""

import numpy as np
import pytest
import torch
from ase import Atoms

from deepmd_like.errors import UserError
from deepmd_like.md import LennardJones, SumPotential
from deepmd_like.md.forces import compute_forces
from deepmd_like.nn.evaluate import evaluate
from deepmd_like.md.state import state_from_atoms


def _batch(seed=0, n_structures=2):
    rng = np.random.default_rng(seed)
    structures = []
    for s in range(n_structures):
        cell = np.diag(rng.uniform(6.0, 8.0, 3))
        cell[1, 0], cell[2, 0] = rng.uniform(-1.5, 1.5, 2)
        n = 10 + s
        # Jittered grid: no two atoms too close.
        grid = np.stack(np.meshgrid(*[np.arange(3)] * 3), -1).reshape(-1, 3)[:n]
        fractional = (grid + rng.uniform(0.2, 0.8, (n, 3))) / 3.0
        fractional += rng.integers(-2, 3, (n, 3))  # unwrapped
        structures.append(Atoms(f"Ar{n}", positions=fractional @ cell, cell=cell,
                                pbc=True))
    return state_from_atoms(structures).batch()


@pytest.mark.parametrize("smoothing", ["energy_shift", "force_shift", "none"])
def test_analytic_forces_and_virial_equal_autograd(smoothing):
    potential = LennardJones(0.0104, 2.0, 5.5, smoothing=smoothing)
    batch = _batch()
    analytic = potential.energy_and_forces(batch, virial=True)
    reference = evaluate(potential, batch, forces=True, virial=True)
    for key in ("energy", "atom_energy", "forces", "virial"):
        torch.testing.assert_close(analytic[key], reference[key],
                                   rtol=1e-10, atol=1e-12)


def test_forces_and_virial_equal_finite_differences():
    potential = LennardJones(0.0104, 2.0, 5.5, smoothing="force_shift")
    batch = _batch(1, n_structures=1)
    out = potential.energy_and_forces(batch, virial=True)
    h = 1e-5

    def energy(positions, cell):
        moved = dict(batch, positions=positions, cell=cell)
        return float(potential(moved)["energy"].sum())

    positions, cell = batch["positions"], batch["cell"]
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        step = torch.zeros_like(positions)
        step[atom, axis] = h
        numeric = -(energy(positions + step, cell)
                    - energy(positions - step, cell)) / (2 * h)
        assert abs(numeric - float(out["forces"][atom, axis])) < 1e-7
    for a, b in [(0, 0), (1, 2), (2, 1)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] = h
        plus = energy(positions + positions @ strain, cell + cell @ strain)
        minus = energy(positions - positions @ strain, cell - cell @ strain)
        numeric = -(plus - minus) / (2 * h)
        assert abs(numeric - float(out["virial"][0, a, b])) < 1e-7


def test_cutoff_continuity():
    r = torch.tensor([5.5 - 1e-9, 5.5 - 1e-6], dtype=torch.float64)
    for smoothing in ("energy_shift", "force_shift"):
        potential = LennardJones(0.0104, 2.0, 5.5, smoothing=smoothing)
        assert abs(float(potential.pair_energy(r[:1]))) < 1e-10
    # The force-shifted pair force also vanishes at the cutoff; the
    # energy-shifted one jumps.
    smooth = LennardJones(0.0104, 2.0, 5.5, smoothing="force_shift")
    shifted = LennardJones(0.0104, 2.0, 5.5, smoothing="energy_shift")
    slope = (smooth.pair_energy(r[1:]) - smooth.pair_energy(r[:1])) / (r[1] - r[0])
    assert abs(float(slope)) < 1e-6
    slope = (shifted.pair_energy(r[1:]) - shifted.pair_energy(r[:1])) / (r[1] - r[0])
    assert abs(float(slope)) > 1e-4


def test_pair_energy_at_the_minimum():
    potential = LennardJones(0.0104, 3.4, 20.0, smoothing="none")
    r_min = torch.tensor([2 ** (1 / 6) * 3.4], dtype=torch.float64)
    assert abs(float(potential.pair_energy(r_min)) + 0.0104) < 1e-14


def test_sum_of_potentials_adds_energies_and_forces():
    first = LennardJones(0.0104, 2.0, 5.5)
    second = LennardJones(0.002, 1.5, 4.0, smoothing="force_shift")
    total = SumPotential([first, second])
    assert total.cutoff == 5.5
    batch = _batch(2)
    summed = compute_forces(total, batch, virial=True)
    parts = [compute_forces(p, batch, virial=True) for p in (first, second)]
    for key in ("energy", "forces", "virial"):
        torch.testing.assert_close(summed[key], parts[0][key] + parts[1][key])
    torch.testing.assert_close(total(batch)["energy"], summed["energy"])


def test_unknown_element_is_named():
    potential = LennardJones(0.0104, 2.0, 5.5, type_map=["Ar"])
    batch = _batch()
    batch["atomic_numbers"] = batch["atomic_numbers"].clone()
    batch["atomic_numbers"][3] = 36
    with pytest.raises(UserError, match="Kr"):
        potential(batch)
    with pytest.raises(UserError, match="Kr"):
        potential.energy_and_forces(batch)
    assert SumPotential([potential, LennardJones(1, 1, 2, type_map=["Ar", "Kr"])]
                        ).type_map == ["Ar"]


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError, match="smoothing"):
        LennardJones(0.01, 3.4, 8.5, smoothing="switch")
    with pytest.raises(UserError, match="positive"):
        LennardJones(-0.01, 3.4, 8.5)


class AutogradOnly(torch.nn.Module):
    """A potential without analytic forces (the engine must use autograd and
    the full neighbour list)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.cutoff = inner.cutoff
        self.type_map = inner.type_map

    def forward(self, batch):
        return self.inner(batch)


def test_engine_with_autograd_potential_follows_the_analytic_one():
    from ase.build import bulk

    from deepmd_like.md import Simulation, VelocityVerlet

    atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)
    atoms.positions += np.random.default_rng(4).normal(0, 0.1, atoms.positions.shape)
    runs = []
    for potential in (LennardJones(0.0104, 3.4, 6.0),
                      AutogradOnly(LennardJones(0.0104, 3.4, 6.0))):
        sim = Simulation(atoms, potential, VelocityVerlet(4.0), skin=0.4, seed=1)
        assert sim.neighbors.half == hasattr(potential, "energy_and_forces")
        sim.initialize_velocities(150.0)
        sim.run(40)
        runs.append(sim)
    torch.testing.assert_close(runs[0].state.positions, runs[1].state.positions,
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(runs[0].observables()["pressure"],
                               runs[1].observables()["pressure"], rtol=1e-10, atol=0)
