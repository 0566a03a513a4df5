"""The minimum-image shortcut of the neighbour search against ASE."""

import numpy as np
import pytest
import torch
from ase.neighborlist import primitive_neighbor_list

from deepmd_like.nn.neighbors import _minimum_image_applies, neighbor_list


@pytest.mark.parametrize("seed", range(5))
def test_orthorhombic_boxes_two_cutoffs_wide_match_ase(seed):
    rng = np.random.default_rng(seed)
    cutoff = 3.0
    cell = np.diag(rng.uniform(2 * cutoff, 9.0, 3))
    cell[0, 0] = 2 * cutoff  # exactly two cutoffs wide is allowed
    n_atoms = 40
    positions = rng.uniform(-1.5, 2.5, (n_atoms, 3)) @ cell  # unwrapped
    assert _minimum_image_applies(torch.tensor(cell), torch.ones(3, dtype=bool), cutoff)
    i, j, shifts = primitive_neighbor_list("ijS", (True,) * 3, cell, positions, cutoff)
    expected = {(a, b, *s) for a, b, s in zip(i, j, shifts)}
    pairs = neighbor_list(torch.tensor(positions), torch.tensor(cell)[None],
                          torch.ones(1, 3, dtype=bool),
                          torch.zeros(n_atoms, dtype=torch.long), cutoff)
    found = {(int(a), int(b), *map(int, np.rint(s.numpy())))
             for a, b, s in zip(pairs.centers, pairs.neighbors, pairs.shifts)}
    assert found == expected
    key = pairs.centers * n_atoms + pairs.neighbors
    assert bool((key[1:] > key[:-1]).all())  # sorted, each pair once


def test_shortcut_is_not_used_for_tilted_or_small_boxes():
    periodic = torch.ones(3, dtype=bool)
    tilted = torch.tensor([[8.0, 0, 0], [0.5, 8.0, 0], [0, 0, 8.0]])
    assert not _minimum_image_applies(tilted, periodic, 3.0)
    assert not _minimum_image_applies(torch.eye(3) * 5.9, periodic, 3.0)
    assert not _minimum_image_applies(torch.eye(3) * 8.0,
                                      torch.tensor([True, True, False]), 3.0)
