"""The smooth environment of each atom: neighbour selection and env matrix.

For an atom ``i`` with a neighbour ``j`` at ``r_ij = (x, y, z)``, ``r = |r_ij|``,
the environment matrix row of ``j`` is::

    (s, s x / r, s y / r, s z / r),   s(r) = w(r) / r

where ``w`` is 1 below ``rcut_smth``, 0 beyond ``rcut`` and, with
``u = (r - rcut_smth) / (rcut - rcut_smth)``, the quintic
``w = u^3 (-6 u^2 + 15 u - 10) + 1`` in between, so ``s`` and its first two
derivatives are continuous everywhere.

Neighbours are kept in a padded table of ``sum(sel)`` slots per atom: ``sel[t]``
slots for neighbours of type ``t``, filled nearest first. A padded slot holds
an all-zero row, the same row a neighbour has as it leaves the cutoff, so
the energy is smooth when neighbours come and go. Neighbours beyond
``sel[t]`` cannot be represented; they are counted and reported by the
caller (never dropped silently).

Every function here is TorchScript-compatible: it is part of frozen models.
"""

from __future__ import annotations

from typing import List, Tuple

import torch


def smooth_weight(r: torch.Tensor, rcut_smth: float, rcut: float) -> torch.Tensor:
    """Switching function ``w(r)``: 1 below ``rcut_smth``, 0 from ``rcut`` on.

    Parameters
    ----------
    r : (...) float, Å
    rcut_smth, rcut : float, Å

    Returns
    -------
    (...) float
    """
    u = ((r - rcut_smth) / (rcut - rcut_smth)).clamp(0.0, 1.0)
    return u * u * u * (u * (-6.0 * u + 15.0) - 10.0) + 1.0


def select_neighbors(
    rij: torch.Tensor,
    centers: torch.Tensor,
    neighbor_types: torch.Tensor,
    n_atoms: int,
    rcut: float,
    sel: List[int],
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Assign the pairs within ``rcut`` to padded slots, nearest first.

    Parameters
    ----------
    rij : (n_pairs, 3) float, Å
        Pair vectors (only their lengths are used, without gradient).
    centers : (n_pairs,) int64
        Central atom of each pair.
    neighbor_types : (n_pairs,) int64
        Type index of each pair's neighbour.
    n_atoms : int
        Number of atoms in the batch.
    rcut : float, Å
    sel : list of int
        Slots per neighbour type.

    Returns
    -------
    kept : (n_kept,) int64
        Indices into the pairs of those that got a slot, sorted by centre,
        neighbour type and distance.
    slot : (n_kept,) int64
        Flat slot ``center * sum(sel) + offset[type] + rank``.
    dropped : (2,) int64
        Pairs within ``rcut`` that found no slot, and atoms that lost any.
    """
    n_types = len(sel)
    n_slots = 0
    for n in sel:
        n_slots += n
    device = rij.device
    with torch.no_grad():
        distance = torch.linalg.vector_norm(rij.detach(), dim=-1)
        within = torch.nonzero(distance < rcut).squeeze(-1)
        distance = distance[within]
        # Sort by distance, then (stably) by centre and neighbour type.
        order = torch.argsort(distance)
        within = within[order]
        group = centers[within] * n_types + neighbor_types[within]
        group_sorted, order = torch.sort(group, stable=True)
        within = within[order]

        counts = torch.bincount(group_sorted, minlength=n_atoms * n_types)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(within.shape[0], device=device) - starts[group_sorted]
        sel_t = torch.tensor(sel, dtype=torch.long, device=device)
        offset = torch.cumsum(sel_t, 0) - sel_t
        type_j = group_sorted % n_types
        fits = rank < sel_t[type_j]
        center = group_sorted // n_types
        slot = center * n_slots + offset[type_j] + rank

        lost = ~fits
        n_lost_pairs = lost.sum()
        lost_atoms = torch.zeros(n_atoms, dtype=torch.bool, device=device)
        lost_atoms[center[lost]] = True
        dropped = torch.stack([n_lost_pairs, lost_atoms.sum()])
        keep = torch.nonzero(fits).squeeze(-1)
    return within[keep], slot[keep], dropped


def environment_rows(
    rij: torch.Tensor, rcut_smth: float, rcut: float
) -> torch.Tensor:
    """Environment-matrix rows ``(s, s x/r, s y/r, s z/r)`` of pairs.

    Parameters
    ----------
    rij : (n_pairs, 3) float, Å
        Pair vectors of neighbours closer than ``rcut`` (non-zero length).

    Returns
    -------
    (n_pairs, 4) float, 1/Å
    """
    r = torch.linalg.vector_norm(rij, dim=-1, keepdim=True)
    s = smooth_weight(r, rcut_smth, rcut) / r
    return torch.cat([s, rij * (s / r)], dim=-1)
