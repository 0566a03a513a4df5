"""Cell list and Verlet list against a brute-force image search."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list

from deepmd_like.md import LennardJones, Simulation, VelocityVerlet, VerletList
from deepmd_like.nn import cell_list, neighbors


def _random_cell(rng, lengths):
    cell = np.diag(lengths)
    cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.3, 0.3, 3) * lengths.min()
    return cell


def _pair_set(i, j, shifts):
    return {
        (int(a), int(b), *map(int, np.rint(s)))
        for a, b, s in zip(i, j, np.asarray(shifts))
    }


def _brute_force(positions, cell, pbc, cutoff):
    i, j, shifts = primitive_neighbor_list(
        "ijS", pbc, cell, positions, cutoff, self_interaction=False
    )
    return _pair_set(i, j, shifts)


@pytest.mark.parametrize("seed", range(4))
def test_cell_list_equals_brute_force_in_order(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    cutoff = 3.0
    cell = _random_cell(rng, rng.uniform(9.5, 14.0, 3))  # 3-4 bins per side
    n_atoms = 300
    fractional = rng.uniform(-2.5, 3.5, (n_atoms, 3))  # several images away
    positions = torch.tensor(fractional @ cell)
    pbc = torch.ones(3, dtype=torch.bool)
    assert cell_list.applicable(torch.tensor(cell), pbc, cutoff)
    i, j, shift = cell_list.structure_pairs(positions, torch.tensor(cell), pbc, cutoff)

    monkeypatch.setattr(neighbors, "CELL_LIST_MIN_ATOMS", 10**9)
    brute = neighbors.neighbor_list(
        positions, torch.tensor(cell)[None], pbc[None],
        torch.zeros(n_atoms, dtype=torch.long), cutoff,
    )
    assert torch.equal(i, brute.centers)
    assert torch.equal(j, brute.neighbors)
    assert torch.equal(shift, brute.shifts)
    assert _pair_set(i, j, shift) == _brute_force(
        positions.numpy(), cell, (True,) * 3, cutoff
    )


def test_cell_list_for_a_cluster_and_dispatch(monkeypatch):
    rng = np.random.default_rng(7)
    positions = torch.tensor(rng.uniform(-12.0, 9.0, (400, 3)))
    zero_cell = torch.zeros(1, 3, 3, dtype=torch.float64)
    no_pbc = torch.zeros(1, 3, dtype=torch.bool)
    index = torch.zeros(400, dtype=torch.long)
    fast = neighbors.neighbor_list(positions, zero_cell, no_pbc, index, 2.5)
    monkeypatch.setattr(neighbors, "CELL_LIST_MIN_ATOMS", 10**9)
    slow = neighbors.neighbor_list(positions, zero_cell, no_pbc, index, 2.5)
    assert len(fast) > 100
    for name in ("centers", "neighbors", "shifts"):
        assert torch.equal(getattr(fast, name), getattr(slow, name))


def test_half_list_is_half_of_the_full_list():
    rng = np.random.default_rng(3)
    cells = [_random_cell(rng, np.array([10.0, 11.0, 10.5])),
             _random_cell(rng, np.array([4.0, 5.0, 4.5]))]  # small: brute force
    counts = [300, 7]
    positions = np.concatenate(
        [rng.uniform(-1.0, 2.0, (n, 3)) @ c for n, c in zip(counts, cells)]
    )
    index = torch.tensor(np.repeat([0, 1], counts))
    args = (torch.tensor(positions), torch.tensor(np.stack(cells)),
            torch.ones(2, 3, dtype=torch.bool), index, 3.0)
    full = neighbors.neighbor_list(*args)
    i, j, s = cell_list.half_neighbor_list(*args)
    half = _pair_set(i, j, s)
    mirrored = {(b, a, -x, -y, -z) for a, b, x, y, z in half}
    assert not half & mirrored
    assert half | mirrored == _pair_set(full.centers, full.neighbors, full.shifts)


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_verlet_list_never_misses_a_pair(seed, half):
    """Random walks in small triclinic cells (down to below the cutoff):
    after every update the list, cut at the cutoff, equals a brute-force
    search at the current positions."""
    rng = np.random.default_rng(seed)
    cutoff, skin = 3.0, 0.6
    cell = _random_cell(rng, rng.uniform(2.5, 7.0, 3))
    n_atoms = 6
    positions = rng.uniform(-2.0, 3.0, (n_atoms, 3)) @ cell
    pbc = torch.ones(1, 3, dtype=torch.bool)
    index = torch.zeros(n_atoms, dtype=torch.long)
    cell_t = torch.tensor(cell)[None]
    verlet = VerletList(cutoff, skin, half=half)
    for _ in range(60):
        positions = positions + rng.normal(0.0, 0.08, positions.shape)
        pairs = verlet.update(torch.tensor(positions), cell_t, pbc, index)
        vectors = neighbors.pair_vectors(torch.tensor(positions), cell_t, index, pairs)
        inside = (vectors.norm(dim=1) < cutoff).numpy()
        listed = _pair_set(
            pairs.centers[inside], pairs.neighbors[inside], pairs.shifts[inside]
        )
        expected = _brute_force(positions, cell, (True,) * 3, cutoff)
        if half:
            listed |= {(b, a, -x, -y, -z) for a, b, x, y, z in listed}
        assert listed == expected
    assert 1 < verlet.n_builds < 60  # it did skip rebuilds, and it did rebuild


def test_verlet_list_under_a_changing_cell():
    """Cell scaling and shear (as under a barostat) are accounted for."""
    rng = np.random.default_rng(11)
    cutoff, skin = 3.0, 0.8
    reference_cell = _random_cell(rng, np.array([7.0, 8.0, 7.5]))
    fractional = rng.uniform(0.0, 1.0, (40, 3))
    pbc = torch.ones(1, 3, dtype=torch.bool)
    index = torch.zeros(40, dtype=torch.long)
    verlet = VerletList(cutoff, skin)
    cell = reference_cell.copy()
    for _ in range(80):
        cell = cell @ (np.eye(3) + rng.normal(0.0, 0.01, (3, 3)))
        fractional = fractional + rng.normal(0.0, 0.003, fractional.shape)
        positions = fractional @ cell
        cell_t = torch.tensor(cell)[None]
        pairs = verlet.update(torch.tensor(positions), cell_t, pbc, index)
        vectors = neighbors.pair_vectors(torch.tensor(positions), cell_t, index, pairs)
        inside = (vectors.norm(dim=1) < cutoff).numpy()
        listed = _pair_set(
            pairs.centers[inside], pairs.neighbors[inside], pairs.shifts[inside]
        )
        assert listed == _brute_force(positions, cell, (True,) * 3, cutoff)
    assert 1 < verlet.n_builds < 80


def test_energy_unchanged_by_wrapping_and_lattice_translations():
    rng = np.random.default_rng(5)
    cell = _random_cell(rng, np.array([6.0, 6.5, 7.0]))  # below 2 * cutoff
    fractional = rng.uniform(0.0, 1.0, (12, 3))
    potential = LennardJones(0.0104, 3.4, 5.0)

    def energy(frac):
        atoms = Atoms("Ar12", scaled_positions=frac, cell=cell, pbc=True)
        atoms.positions = frac @ cell  # keep the given (unwrapped) positions
        sim = Simulation(atoms, potential, VelocityVerlet(1.0))
        return float(sim.observables()["potential_energy"][0]), sim.state.forces

    reference, forces = energy(fractional)
    for trial in range(3):
        moved = fractional + rng.integers(-4, 5, fractional.shape)
        value, moved_forces = energy(moved)
        assert abs(value - reference) < 1e-10 * abs(reference)
        assert torch.allclose(moved_forces, forces, atol=1e-10)
    value, _ = energy(fractional - np.floor(fractional) - 3.0)
    assert abs(value - reference) < 1e-10 * abs(reference)


@pytest.mark.parametrize("periodic", [True, False])
def test_cell_list_in_a_dilute_system(periodic, monkeypatch):
    """Far more bins than atoms would fit: bins are merged, result unchanged."""
    rng = np.random.default_rng(9)
    cell = _random_cell(rng, np.array([150.0, 180.0, 160.0]))
    positions = torch.tensor(rng.uniform(0.0, 1.0, (300, 3)) @ cell)
    # A few close pairs, so the list is not empty.
    positions[1::2] = positions[::2] + torch.tensor(rng.normal(0, 1.0, (150, 3)))
    pbc = torch.full((1, 3), periodic)
    cells = torch.tensor(cell)[None] if periodic else torch.zeros(1, 3, 3,
                                                                  dtype=torch.float64)
    index = torch.zeros(300, dtype=torch.long)
    fast = neighbors.neighbor_list(positions, cells, pbc, index, 3.0)
    monkeypatch.setattr(neighbors, "CELL_LIST_MIN_ATOMS", 10**9)
    slow = neighbors.neighbor_list(positions, cells, pbc, index, 3.0)
    assert len(fast) > 50
    for name in ("centers", "neighbors", "shifts"):
        assert torch.equal(getattr(fast, name), getattr(slow, name))
