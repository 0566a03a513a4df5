"""Reusable physics checks for potentials: finite differences and symmetry.

These helpers compare a potential's autograd forces and virials with
central finite differences of its energy, and its energy with the energy of
transformed copies of a structure. Tests of every potential use them.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def make_batch(structures: list[dict]) -> dict:
    """A batch from structures given as dicts of arrays.

    Parameters
    ----------
    structures : list of dict
        Each with ``positions`` (n, 3) Å, ``numbers`` (n,), and optionally
        ``cell`` (3, 3) Å and ``pbc`` (3,) bool (default: no box).

    Returns
    -------
    dict
        The batch dictionary (float64 positions and cells).
    """
    positions, numbers, index, cells, pbcs = [], [], [], [], []
    for s, structure in enumerate(structures):
        pos = torch.as_tensor(np.asarray(structure["positions"]), dtype=torch.float64)
        positions.append(pos)
        numbers.append(torch.as_tensor(np.asarray(structure["numbers"]),
                                       dtype=torch.long))
        index.append(torch.full((pos.shape[0],), s, dtype=torch.long))
        cell = structure.get("cell")
        cells.append(torch.zeros(3, 3, dtype=torch.float64) if cell is None
                     else torch.as_tensor(np.asarray(cell), dtype=torch.float64))
        pbc = structure.get("pbc", (False, False, False))
        pbcs.append(torch.as_tensor(np.asarray(pbc), dtype=torch.bool))
    return {
        "positions": torch.cat(positions),
        "atomic_numbers": torch.cat(numbers),
        "structure_index": torch.cat(index),
        "cell": torch.stack(cells),
        "pbc": torch.stack(pbcs),
        "n_atoms": torch.tensor([p.shape[0] for p in positions]),
    }


def _energy(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(batch)["energy"].to(torch.float64)


def finite_difference_forces(model, batch: dict, step: float = 1e-4) -> torch.Tensor:
    """``-dE/dr`` by central differences of the total energy.

    Returns
    -------
    (n_atoms, 3) float64, eV/Å
    """
    positions = batch["positions"]
    forces = torch.zeros(positions.shape, dtype=torch.float64)
    for atom in range(positions.shape[0]):
        for k in range(3):
            energies = []
            for sign in (1.0, -1.0):
                moved = positions.clone()
                moved[atom, k] += sign * step
                energies.append(_energy(model, {**batch, "positions": moved}).sum())
            forces[atom, k] = -(energies[0] - energies[1]) / (2 * step)
    return forces


def finite_difference_virial(model, batch: dict, step: float = 1e-5) -> torch.Tensor:
    """``W = -dE/deps`` by central differences of a homogeneous strain.

    Returns
    -------
    (n_structures, 3, 3) float64, eV
    """
    positions, cell = batch["positions"], batch["cell"]
    index = batch["structure_index"]
    n_structures = cell.shape[0]
    virial = torch.zeros(n_structures, 3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                strain = torch.zeros(3, 3, dtype=torch.float64)
                strain[a, b] = sign * step
                moved = positions + positions @ strain
                strained = cell + cell @ strain
                energies.append(_energy(model, {**batch, "positions": moved,
                                                "cell": strained}))
            # Each structure's energy depends only on its own strain.
            virial[:, a, b] = -(energies[0] - energies[1]) / (2 * step)
    del index
    return virial


def random_rotation(seed: int) -> torch.Tensor:
    """A random proper rotation matrix (3, 3) float64."""
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(|b|, tiny)."""
    a, b = a.detach(), b.detach()
    scale = max(float(b.abs().max()), 1e-300)
    return float((a - b).abs().max()) / scale if math.isfinite(scale) else math.inf
