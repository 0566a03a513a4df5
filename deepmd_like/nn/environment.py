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
    """Rank the pairs within ``rcut`` by distance per centre and neighbour type.

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
        Indices into the pairs of those within ``rcut`` that fit into
        ``sel``, sorted by centre, neighbour type and distance.
    rank : (n_kept,) int64
        Position of each kept pair among its centre's neighbours of the same
        type (0 = nearest); always below ``sel[type]``.
    dropped : (2,) int64
        Pairs within ``rcut`` that found no slot, and atoms that lost any.
    """
    n_types = len(sel)
    device = rij.device
    with torch.no_grad():
        distance = torch.linalg.vector_norm(rij.detach(), dim=-1)
        within = torch.nonzero(distance < rcut).squeeze(-1)
        # One integer key orders by centre, neighbour type and distance
        # (resolved to rcut / 2^24, ties in original order).
        group = centers[within] * n_types + neighbor_types[within]
        ticks = (distance[within] * (16777215.0 / rcut)).to(torch.long)
        key = group * 16777216 + ticks
        key, order = torch.sort(key, stable=True)
        within = within[order]
        group = key // 16777216

        counts = torch.bincount(group, minlength=n_atoms * n_types)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(within.shape[0], device=device) - starts[group]
        sel_t = torch.tensor(sel, dtype=torch.long, device=device)
        fits = rank < sel_t[group % n_types]

        lost = ~fits
        lost_atoms = torch.zeros(n_atoms, dtype=torch.bool, device=device)
        lost_atoms[group[lost] // n_types] = True
        dropped = torch.stack([lost.sum(), lost_atoms.sum()])
        keep = torch.nonzero(fits).squeeze(-1)
    return within[keep], rank[keep], dropped


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
