"""Neighbour lists against ASE's independent image search."""

import numpy as np
import pytest
import torch
from ase.neighborlist import primitive_neighbor_list

from deepmd_like.nn.neighbors import neighbor_list, pair_vectors


def _as_set(i, j, shifts):
    return {
        (int(a), int(b), *map(int, np.rint(s)))
        for a, b, s in zip(i, j, np.asarray(shifts))
    }


def _random_cell(rng, scale):
    cell = np.diag(rng.uniform(0.6, 1.4, 3) * scale)
    cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.4, 0.4, 3) * scale
    return cell


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False),
                                 (False, False, False), (True, False, True)])
def test_pairs_equal_ase_image_search(seed, pbc):
    rng = np.random.default_rng(seed)
    cutoff = 3.0
    # Cells from well below to above twice the cutoff.
    cell = _random_cell(rng, scale=rng.uniform(2.0, 8.0))
    n_atoms = int(rng.integers(1, 12))
    fractional = rng.uniform(-2.5, 3.5, (n_atoms, 3))  # several images away
    positions = fractional @ cell
    i, j, shifts = primitive_neighbor_list(
        "ijS", pbc, cell, positions, cutoff, self_interaction=False
    )
    expected = _as_set(i, j, shifts)

    nl = neighbor_list(
        torch.tensor(positions),
        torch.tensor(cell)[None],
        torch.tensor(pbc)[None],
        torch.zeros(n_atoms, dtype=torch.long),
        cutoff,
    )
    assert _as_set(nl.centers, nl.neighbors, nl.shifts) == expected

    vectors = pair_vectors(
        torch.tensor(positions), torch.tensor(cell)[None],
        torch.zeros(n_atoms, dtype=torch.long), nl,
    )
    assert bool((vectors.norm(dim=1) < cutoff).all())


def test_batch_of_structures_keeps_them_apart():
    rng = np.random.default_rng(1)
    cells, positions, index = [], [], []
    for s, n in enumerate([3, 5]):
        cell = _random_cell(rng, 4.0)
        cells.append(cell)
        positions.append(rng.uniform(0, 1, (n, 3)) @ cell)
        index += [s] * n
    nl = neighbor_list(
        torch.tensor(np.concatenate(positions)),
        torch.tensor(np.stack(cells)),
        torch.ones(2, 3, dtype=torch.bool),
        torch.tensor(index),
        2.5,
    )
    index_t = torch.tensor(index)
    assert bool((index_t[nl.centers] == index_t[nl.neighbors]).all())
    offset = 0
    for s, n in enumerate([3, 5]):
        i, j, S = primitive_neighbor_list(
            "ijS", (True,) * 3, cells[s], positions[s], 2.5
        )
        mine = [(c - offset, b - offset, *sh) for c, b, *sh in
                _as_set(nl.centers, nl.neighbors, nl.shifts) if index[c] == s]
        assert set(mine) == _as_set(i, j, S)
        offset += n


def test_vectors_are_differentiable_in_positions_and_cell():
    cell = torch.eye(3, dtype=torch.float64)[None] * 3.0
    positions = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.1, 0.9]], dtype=torch.float64)
    positions.requires_grad_(True)
    cell.requires_grad_(True)
    index = torch.zeros(2, dtype=torch.long)
    nl = neighbor_list(positions, cell, torch.ones(1, 3, dtype=torch.bool), index, 4.0)
    energy = pair_vectors(positions, cell, index, nl).norm(dim=1).sum()
    energy.backward()
    assert torch.isfinite(positions.grad).all() and torch.isfinite(cell.grad).all()
    assert cell.grad.abs().sum() > 0
