"""Neighbour lists for batches of structures of different sizes.

A neighbour list is built without gradients (it is a set of integer indices
and lattice translations); pair vectors are then computed from the positions
and cells with :func:`pair_vectors`, so energies are differentiable with
respect to both. Periodic directions may be any subset of the three (bulk,
slab, wire, molecule); cells may be triclinic and smaller than the cutoff, and
positions need not be wrapped into the cell.

Conventions
-----------
For a pair ``(i, j)`` with lattice translation ``shift`` (three integers) in
structure ``s``, the vector from atom ``i`` to the image of atom ``j`` is::

    r_ij = positions[j] - positions[i] + shift @ cell[s]

where the rows of ``cell[s]`` are the lattice vectors. The list is *full*:
it holds ``(i, j, shift)`` and ``(j, i, -shift)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepmd_like.errors import UserError
from deepmd_like.nn import cell_list

# Above this many candidate pair distances per image batch, images are
# processed in smaller groups to bound memory.
_MAX_CANDIDATES = 4_000_000

# Structures with at least this many atoms use the cell list
# (deepmd_like.nn.cell_list) where their cell allows it; same result.
CELL_LIST_MIN_ATOMS = 256


@dataclass
class NeighborList:
    """Pairs within a cutoff.

    Attributes
    ----------
    centers : (n_pairs,) int64
        Index of the central atom ``i`` in the batch.
    neighbors : (n_pairs,) int64
        Index of the neighbour atom ``j`` in the batch.
    shifts : (n_pairs, 3) float
        Lattice translation (integers stored in the positions' dtype) applied
        to ``j``.
    """

    centers: torch.Tensor
    neighbors: torch.Tensor
    shifts: torch.Tensor

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def _image_ranges(cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> list[int]:
    """Number of lattice images needed on each side along each direction."""
    # The spacing between lattice planes normal to direction k is 1/|b_k|,
    # with b_k the rows of inv(cell)^T; a sphere of radius rc spans
    # rc*|b_k| planes on each side.
    reciprocal = torch.linalg.inv(cell).T
    counts = []
    for k in range(3):
        if bool(pbc[k]):
            counts.append(int(math.ceil(cutoff * float(reciprocal[k].norm()))))
        else:
            counts.append(0)
    return counts


def _check_cell(cell: torch.Tensor, pbc: torch.Tensor, structure: int) -> None:
    if not bool(pbc.any()):
        return
    volume = float(torch.linalg.det(cell).abs())
    if not math.isfinite(volume) or volume < 1e-8:
        raise UserError(
            f"structure {structure} is periodic but its cell is singular "
            f"(volume {volume:.3g} Å^3); give three independent lattice vectors"
        )


def _minimum_image_applies(
    cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> bool:
    """An orthorhombic, fully periodic box at least two cutoffs wide."""
    if not bool(pbc.all()):
        return False
    diagonal = torch.diagonal(cell)
    off_diagonal = cell - torch.diag(diagonal)
    return bool((off_diagonal == 0).all()) and bool((diagonal >= 2 * cutoff).all())


def _minimum_image_pairs(
    positions: torch.Tensor, cell: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs in a box where each pair has at most one image within the cutoff.

    In an orthorhombic box with every edge at least ``2 * cutoff`` two images
    of an atom are at least ``2 * cutoff`` apart, so at most one lies within
    the cutoff of any atom: the nearest, found by rounding the fractional
    difference. This costs one distance per pair instead of 27.
    """
    lengths = torch.diagonal(cell)
    offsets = torch.floor(positions / lengths)
    wrapped = positions - offsets * lengths
    delta = wrapped[None, :, :] - wrapped[:, None, :]  # [i, j, 3]
    image = -torch.round(delta / lengths)
    delta = delta + image * lengths
    within = (delta * delta).sum(-1) < cutoff * cutoff
    within.fill_diagonal_(False)
    i, j = torch.nonzero(within, as_tuple=True)
    shift = image[i, j] - offsets[j] + offsets[i]
    return i, j, shift


def _structure_pairs(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs of one structure by searching every relevant lattice image."""
    n_atoms = positions.shape[0]
    dtype, device = positions.dtype, positions.device
    periodic = pbc.to(dtype)
    if _minimum_image_applies(cell, pbc, cutoff):
        return _minimum_image_pairs(positions, cell, cutoff)

    if bool(pbc.any()):
        # Wrap periodic directions into [0, 1) and remember the offsets, so
        # that atoms many images away cost no extra images.
        fractional = positions @ torch.linalg.inv(cell)
        offsets = torch.floor(fractional) * periodic
        wrapped = positions - offsets @ cell
        counts = _image_ranges(cell, pbc, cutoff)
    else:
        offsets = torch.zeros_like(positions)
        wrapped = positions
        counts = [0, 0, 0]

    axes = [torch.arange(-c, c + 1, device=device, dtype=dtype) for c in counts]
    images = torch.cartesian_prod(*axes).reshape(-1, 3)
    translations = images @ cell if bool(pbc.any()) else torch.zeros_like(images)

    per_group = max(1, _MAX_CANDIDATES // max(1, n_atoms * n_atoms))
    cutoff_sq = cutoff * cutoff
    norm_sq = (wrapped * wrapped).sum(-1)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b by one matrix product per image
    # selects candidates; a margin covers its rounding error, and the
    # candidates are then checked with exact differences.
    scale = cutoff_sq + float(norm_sq.max()) + float((translations**2).sum(-1).max())
    margin = max(1e-9, 100 * torch.finfo(dtype).eps) * scale
    found_i, found_j, found_image = [], [], []
    for start in range(0, images.shape[0], per_group):
        shifted = wrapped[None, :, :] + translations[start : start + per_group, None]
        dist_sq = (
            norm_sq[None, :, None]
            + (shifted * shifted).sum(-1)[:, None, :]
            - 2.0 * torch.matmul(wrapped, shifted.transpose(1, 2))
        )  # [n_images, n_atoms_i, n_atoms_j]
        image_idx, i, j = torch.nonzero(dist_sq < cutoff_sq + margin, as_tuple=True)
        image_idx = image_idx + start
        delta = wrapped[j] + translations[image_idx] - wrapped[i]
        exact = (delta * delta).sum(-1)
        is_self = (i == j) & (images[image_idx] == 0).all(-1)
        keep = (exact < cutoff_sq) & ~is_self
        found_i.append(i[keep])
        found_j.append(j[keep])
        found_image.append(image_idx[keep])

    i = torch.cat(found_i)
    j = torch.cat(found_j)
    image_idx = torch.cat(found_image)
    # Sort by centre, neighbour and image; for a given pair the shift below
    # differs from the image by a constant, so this also orders the shifts.
    key = (i * n_atoms + j) * images.shape[0] + image_idx
    order = torch.sort(key).indices
    i, j = i[order], j[order]
    image = images[image_idx[order]]
    # Translate back to the caller's unwrapped coordinates:
    # r_j - r_i + shift @ cell with shift = image - offset_j + offset_i.
    shift = image - offsets[j] + offsets[i]
    return i, j, shift


def neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    structure_index: torch.Tensor,
    cutoff: float,
    n_structures: int | None = None,
) -> NeighborList:
    """Find every pair of atoms closer than ``cutoff`` in each structure.

    Parameters
    ----------
    positions : (n_atoms_total, 3) float, Å
        Positions of all atoms of the batch, not necessarily wrapped.
    cell : (n_structures, 3, 3) float, Å
        Lattice vectors as rows; ignored along non-periodic directions.
    pbc : (n_structures, 3) bool
        Periodicity of each structure along each lattice vector.
    structure_index : (n_atoms_total,) int64
        The structure each atom belongs to.
    cutoff : float, Å
        Pairs with distance strictly below this are kept.
    n_structures : int, optional
        Number of structures; default ``cell.shape[0]``.

    Returns
    -------
    NeighborList
        A full list sorted by centre, then neighbour, then shift.
    """
    if cutoff <= 0:
        raise UserError(f"the cutoff must be positive, got {cutoff}")
    n_structures = cell.shape[0] if n_structures is None else n_structures
    device = positions.device
    with torch.no_grad():
        positions = positions.detach()
        cell = cell.detach().to(positions.dtype)
        pbc = pbc.to(torch.bool)
        centers, neighbors, shifts = [], [], []
        order = torch.arange(positions.shape[0], device=device)
        # Per-structure lists come sorted; joined in structure order they are
        # sorted overall when each structure's atoms are contiguous.
        already_sorted = bool((structure_index[1:] >= structure_index[:-1]).all())
        for s in range(n_structures):
            members = order[structure_index == s]
            if members.numel() == 0:
                continue
            _check_cell(cell[s], pbc[s], s)
            if members.numel() >= CELL_LIST_MIN_ATOMS and cell_list.applicable(
                cell[s], pbc[s], float(cutoff)
            ):
                # Sorted by centre and neighbour, like the sort below.
                i, j, shift = cell_list.structure_pairs(
                    positions[members], cell[s], pbc[s], float(cutoff)
                )
            else:
                i, j, shift = _structure_pairs(
                    positions[members], cell[s], pbc[s], float(cutoff)
                )
            centers.append(members[i])
            neighbors.append(members[j])
            shifts.append(shift)
        if not centers:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return NeighborList(
                empty, empty.clone(), torch.zeros(0, 3, dtype=positions.dtype)
            )
        centers_t = torch.cat(centers)
        neighbors_t = torch.cat(neighbors)
        shifts_t = torch.cat(shifts)
        if already_sorted:
            return NeighborList(centers_t, neighbors_t, shifts_t)
        key = torch.stack(
            [centers_t.to(shifts_t.dtype), neighbors_t.to(shifts_t.dtype)], 1
        )
        order = _lexsort(torch.cat([key, shifts_t], 1))
        return NeighborList(centers_t[order], neighbors_t[order], shifts_t[order])


def _lexsort(keys: torch.Tensor) -> torch.Tensor:
    """Indices that sort the rows of ``keys`` lexicographically (first column first)."""
    order = torch.arange(keys.shape[0], device=keys.device)
    for column in range(keys.shape[1] - 1, -1, -1):
        order = order[torch.sort(keys[order, column], stable=True).indices]
    return order


def pair_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    structure_index: torch.Tensor,
    pairs: NeighborList,
) -> torch.Tensor:
    """Differentiable vectors from each centre to its neighbour's image.

    Parameters
    ----------
    positions : (n_atoms_total, 3) float, Å
    cell : (n_structures, 3, 3) float, Å
    structure_index : (n_atoms_total,) int64
    pairs : NeighborList

    Returns
    -------
    (n_pairs, 3) float, Å
        ``positions[j] - positions[i] + shift @ cell[structure_index[i]]``.
    """
    cell_of_pair = cell[structure_index[pairs.centers]]  # [n_pairs, 3, 3]
    translation = torch.einsum(
        "pk,pkl->pl", pairs.shifts.to(cell.dtype), cell_of_pair
    )
    return positions[pairs.neighbors] - positions[pairs.centers] + translation
