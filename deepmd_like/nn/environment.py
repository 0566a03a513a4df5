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
        ``sel``.
    rank : (n_kept,) int64
        Slot of each kept pair among its centre's neighbours of the same
        type, always below ``sel[type]``. When some centre has more such
        neighbours than ``sel`` allows, slots go nearest first and the
        farthest are dropped; otherwise their order is that of the list
        (the descriptor sums over slots, so the order does not matter).
    dropped : (2,) int64
        Pairs within ``rcut`` that found no slot, and atoms that lost any.
    """
    with torch.no_grad():
        distance = torch.linalg.vector_norm(rij.detach(), dim=-1)
        kept, rank, dropped = _rank_pairs(distance, centers, neighbor_types,
                                          n_atoms, rcut, sel)
    return kept, rank, dropped


def _rank_pairs(
    distance: torch.Tensor,
    centers: torch.Tensor,
    neighbor_types: torch.Tensor,
    n_atoms: int,
    rcut: float,
    sel: List[int],
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_types = len(sel)
    device = distance.device
    sel_t = torch.tensor(sel, dtype=torch.long, device=device)
    within = torch.nonzero(distance < rcut).squeeze(-1)
    center_w = centers[within]
    type_w = neighbor_types[within]
    counts = torch.bincount(center_w * n_types + type_w, minlength=n_atoms * n_types)
    fits_all = bool((counts.view(n_atoms, n_types) <= sel_t).all())
    grouped = bool((center_w[1:] >= center_w[:-1]).all())
    if fits_all and grouped:
        # Everything fits and each centre's pairs are contiguous: the slots'
        # order is immaterial, so rank by position in the list (a running
        # count per type) without sorting.
        per_center = counts.view(n_atoms, n_types).sum(1)
        start = (torch.cumsum(per_center, 0) - per_center)[center_w]
        rank = torch.zeros_like(center_w)
        for t in range(n_types):
            is_t = (type_w == t).to(torch.long)
            before = torch.cumsum(is_t, 0) - is_t
            rank = torch.where(is_t > 0, before - before[start], rank)
        return within, rank, torch.zeros(2, dtype=torch.long, device=device)

    # One integer key orders by centre, neighbour type and distance
    # (resolved to rcut / 2^24, ties in original order).
    group = center_w * n_types + type_w
    ticks = (distance[within] * (16777215.0 / rcut)).to(torch.long)
    key = group * 16777216 + ticks
    key, order = torch.sort(key, stable=True)
    within = within[order]
    group = key // 16777216

    counts = torch.bincount(group, minlength=n_atoms * n_types)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(within.shape[0], device=device) - starts[group]
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
