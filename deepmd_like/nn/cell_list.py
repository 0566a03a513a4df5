"""Cell-list neighbour search for large structures.

Atoms are sorted into bins at least one cutoff wide, so each atom's
neighbours lie in its own bin and the 26 around it: the work grows with the
number of atoms, not its square. The result is the same full list, in the
same order (centre, then neighbour), as the brute-force image search of
:mod:`deepmd_like.nn.neighbors`, which dispatches here for large structures.

Periodic structures need at least three bins along every lattice direction
(every plane spacing at least three cutoffs), so that the 27 bins around an
atom are distinct and every pair appears once; structures without a box are
binned in their Cartesian bounding box. Smaller or partly periodic cells go
to the brute-force search.
"""

from __future__ import annotations

import math

import torch

# Candidate pairs examined at once (bounds the memory of one chunk).
_CHUNK_CANDIDATES = 4_000_000

# The bin itself, then the 13 offsets of (-1, 0, 1)^3 that are
# lexicographically positive (the other 13 are their opposites).
_HALF_STENCIL = torch.tensor(
    [(0, 0, 0)]
    + [
        (a, b, c)
        for a in (-1, 0, 1)
        for b in (-1, 0, 1)
        for c in (-1, 0, 1)
        if (a, b, c) > (0, 0, 0)
    ]
)


def _bins_per_direction(
    cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> list[int] | None:
    """Bins along each lattice vector of a fully periodic cell, or None."""
    if not bool(pbc.all()):
        return None
    reciprocal = torch.linalg.inv(cell.to(torch.float64)).T
    spacing = 1.0 / reciprocal.norm(dim=1)  # distances between lattice planes
    counts = [int(math.floor(float(d) / cutoff)) for d in spacing]
    return counts if min(counts) >= 3 else None


def _fewer_bins(
    counts: list[int] | None, n_atoms: int, minimum: int
) -> list[int] | None:
    """Merge bins (keeping at least ``minimum`` per direction) so that there
    are not many more bins than atoms: a dilute system must not cost memory
    in empty bins. Wider bins stay correct, only less selective."""
    if counts is None:
        return None
    limit = max(27, 2 * n_atoms)
    while math.prod(counts) > limit and max(counts) > minimum:
        k = counts.index(max(counts))
        counts[k] = max(minimum, counts[k] // 2)
    return counts


def applicable(cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> bool:
    """Whether a structure can be searched with a cell list.

    Parameters
    ----------
    cell : (3, 3) float, Å
    pbc : (3,) bool
    cutoff : float, Å
    """
    if not bool(pbc.any()):
        return True
    return _bins_per_direction(cell, pbc, cutoff) is not None


def structure_pairs(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    cutoff: float,
    half: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs closer than ``cutoff`` in one structure, by cell list.

    Parameters
    ----------
    positions : (n_atoms, 3) float, Å
        Unwrapped positions.
    cell : (3, 3) float, Å
    pbc : (3,) bool
        All True, or all False (no box).
    cutoff : float, Å
    half : bool
        Return each pair once, in no particular (but reproducible) order,
        instead of the sorted full list.

    Returns
    -------
    centers, neighbors : (n_pairs,) int64
        Sorted by centre, then neighbour (each pair once per direction),
        unless ``half``.
    shifts : (n_pairs, 3) float
        Integer lattice translations of the neighbour.
    """
    dtype, device = positions.dtype, positions.device
    n_atoms = positions.shape[0]
    periodic = bool(pbc.any())
    if periodic:
        counts = _fewer_bins(_bins_per_direction(cell, pbc, cutoff), n_atoms, 3)
        if counts is None:
            raise ValueError(
                "cell list needs a fully periodic cell at least three cutoffs "
                "wide in every direction"
            )
        fractional = positions @ torch.linalg.inv(cell)
        offsets = torch.floor(fractional)
        wrapped_fractional = fractional - offsets
        wrapped = positions - offsets @ cell
        n_bins = torch.tensor(counts, device=device)
        coords = torch.floor(wrapped_fractional * n_bins.to(dtype)).long()
    else:
        lower = positions.min(0).values
        extent = positions.max(0).values - lower
        counts = [max(1, int(math.floor(float(e) / cutoff))) for e in extent]
        n_bins = torch.tensor(_fewer_bins(counts, n_atoms, 1), device=device)
        offsets = torch.zeros_like(positions)
        wrapped = positions
        width_of_bins = (extent / n_bins.to(dtype)).clamp(min=cutoff)
        coords = torch.floor((positions - lower) / width_of_bins).long()
    coords = torch.minimum(coords.clamp(min=0), n_bins - 1)

    # Sort atoms into a padded table (n_bins, max_per_bin).
    one = torch.ones_like(n_bins[0])
    strides = torch.stack([n_bins[1] * n_bins[2], n_bins[2], one])
    linear = (coords * strides).sum(1)
    total_bins = int(n_bins.prod())
    order = torch.argsort(linear, stable=True)
    per_bin = torch.bincount(linear, minlength=total_bins)
    starts = torch.cumsum(per_bin, 0) - per_bin
    width = int(per_bin.max())
    rank = torch.arange(n_atoms, device=device) - starts[linear[order]]
    # Empty slots hold n_atoms: the padding row appended to the coordinates.
    table = torch.full(
        (total_bins + 1, width), n_atoms, dtype=torch.long, device=device
    )
    table[linear[order], rank] = order  # the last row stays empty

    # For every bin, itself and 13 of its 26 neighbour bins (one of each
    # opposite pair), with the lattice image each lies in: every pair of
    # atoms in different bins is met once and mirrored.
    stencil = _HALF_STENCIL.to(device)
    n_stencil = stencil.shape[0]
    bin_coords = torch.stack(
        torch.meshgrid(
            *[torch.arange(int(n), device=device) for n in n_bins], indexing="ij"
        ),
        -1,
    ).reshape(-1, 3)
    near = bin_coords[:, None, :] + stencil[None]  # [n_bins, 14, 3]
    if periodic:
        image = torch.div(near, n_bins, rounding_mode="floor")
        near_bins = ((near - image * n_bins) * strides).sum(-1)
        image_f = image.to(dtype)
        translation = image_f @ cell  # [n_bins, 14, 3]
    else:
        image_f = torch.zeros(near.shape, dtype=dtype, device=device)
        outside = ((near < 0) | (near >= n_bins)).any(-1)
        near_bins = torch.where(outside, total_bins, (near * strides).sum(-1))
        translation = image_f
    image_code = ((image_f.reshape(-1, 3).long() + 1) * torch.tensor(
        [9, 3, 1], device=device
    )).sum(1)
    translation_flat = translation.reshape(-1, 3)

    # Screen candidates with a batched matrix product in single precision on
    # coordinates taken relative to each bin's first atom (small numbers);
    # pairs within round-off of the cutoff are then decided exactly. Padding
    # slots sit far away (on opposite sides for the two operands), so they
    # never pass the screen.
    cutoff_sq = cutoff * cutoff
    if periodic:
        bin_diagonal = float((cell.norm(dim=1) / n_bins.to(dtype)).sum())
    else:
        bin_diagonal = float(width_of_bins.norm())
    margin = 1e-5 * (cutoff_sq + 9.0 * bin_diagonal**2)
    per_chunk = max(1, _CHUNK_CANDIDATES // (n_stencil * width * width))
    far = 10.0 * (float(wrapped.abs().max()) + 3.0 * bin_diagonal + cutoff) + 1.0
    # Row n_atoms (padding) at +far for the bin's own atoms, -far for the
    # others.
    padded = torch.cat([wrapped, wrapped.new_full((1, 3), far)])
    padded_other = torch.cat([wrapped, wrapped.new_full((1, 3), -far)])
    slot_in_own = torch.arange(width, device=device)
    occupied = torch.nonzero(per_bin > 0).squeeze(1)
    keys = []
    for first in range(0, occupied.shape[0], per_chunk):
        bins = occupied[first : first + per_chunk]
        # Row gathers with index_select: much faster than advanced indexing.
        own = table.index_select(0, bins)  # [chunk, width]
        other = table.index_select(0, near_bins.index_select(0, bins).reshape(-1))
        other = other.reshape(len(bins), -1)  # [chunk, 14*width]
        origin = padded.index_select(0, own[:, 0])[:, None, :]  # a real atom
        a = padded.index_select(0, own.reshape(-1)).reshape(len(bins), width, 3)
        a = (a - origin).float()
        b = padded_other.index_select(0, other.reshape(-1))
        b = b.reshape(len(bins), n_stencil, width, 3)
        b = (b + translation.index_select(0, bins)[:, :, None, :])
        b = b.reshape(len(bins), -1, 3).sub_(origin).float()
        # |b|^2 - 2 a.b in one fused product, compared with
        # cutoff^2 + margin - |a|^2 (one pass over the big block fewer).
        a_sq = (a * a).sum(-1)  # [chunk, width]
        partial = torch.baddbmm(
            (b * b).sum(-1)[:, None, :], a, b.transpose(1, 2), alpha=-2.0
        )  # [chunk, width, 14*width]
        candidate = partial < (cutoff_sq + margin - a_sq)[:, :, None]
        # In the bin itself keep i != j (both orders are met there), or one
        # order only for a half list.
        if half:
            distinct = slot_in_own[:, None] < slot_in_own[None, :]
        else:
            distinct = slot_in_own[:, None] != slot_in_own[None, :]
        candidate[:, :, :width] &= distinct

        # Flat indices: 2-D advanced indexing is much slower than 1-D.
        flat = torch.nonzero(candidate.reshape(-1)).squeeze(1)
        n_other = other.shape[1]
        # Candidates within round-off of the cutoff are decided exactly
        # (few), before the list is gathered once.
        screened = partial.reshape(-1).index_select(0, flat)
        screened += a_sq.reshape(-1).index_select(0, flat // n_other)
        near = torch.nonzero(screened > cutoff_sq - margin).squeeze(1)
        if near.numel():
            near_flat = flat.index_select(0, near)
            row, column = near_flat // n_other, near_flat % n_other
            i = own.reshape(-1).index_select(0, row)
            j = other.reshape(-1).index_select(0, column + (row // width) * n_other)
            which = bins.index_select(0, row // width) * n_stencil + column // width
            delta = wrapped[j] - wrapped[i] + translation_flat[which]
            outside = near[(delta * delta).sum(-1) >= cutoff_sq]
            if outside.numel():
                keep = torch.ones_like(flat, dtype=torch.bool)
                keep[outside] = False
                flat = flat[keep]
        row = flat // n_other  # chunk_bin * width + slot
        column = flat - row * n_other
        bin_in_chunk = row // width
        i = own.reshape(-1).index_select(0, row)
        j = other.reshape(-1).index_select(0, column + bin_in_chunk * n_other)
        which = bins.index_select(0, bin_in_chunk) * n_stencil + column // width
        if half:
            keys.append((i, j, which))
            continue
        # Encode each pair as one integer (centre, neighbour, image) so that
        # a single sort of integers orders the list with no gathers.
        code = image_code[which]
        mirrored = which % n_stencil != 0
        mirror_code = 26 - code[mirrored]
        keys.append((i * n_atoms + j) * 27 + code)
        keys.append((j[mirrored] * n_atoms + i[mirrored]) * 27 + mirror_code)

    if half:
        i = torch.cat([part[0] for part in keys])
        j = torch.cat([part[1] for part in keys])
        which = torch.cat([part[2] for part in keys])
        shift = image_f.reshape(-1, 3).index_select(0, which)
    else:
        key = torch.sort(torch.cat(keys)).values
        code = key % 27
        pair = key // 27
        i = pair // n_atoms
        j = pair - i * n_atoms
        digits = torch.stack([code // 9, (code // 3) % 3, code % 3], 1)
        shift = (digits - 1).to(dtype)
    if periodic and bool(offsets.any()):
        # Back to the caller's unwrapped coordinates.
        # One column at a time: 1-D gathers are much faster than row gathers.
        columns = offsets.T.contiguous()
        shift = torch.stack(
            [
                shift[:, k]
                - columns[k].index_select(0, j)
                + columns[k].index_select(0, i)
                for k in range(3)
            ],
            1,
        )
    return i, j, shift


def half_pairs_of(
    centers: torch.Tensor, neighbors: torch.Tensor, shifts: torch.Tensor
) -> torch.Tensor:
    """Indices of one of the two copies of every pair of a full list.

    Keeps ``i < j``; for an atom paired with its own image, the shift whose
    first non-zero component is positive.
    """
    first = torch.where(
        shifts[:, 0] != 0,
        shifts[:, 0],
        torch.where(shifts[:, 1] != 0, shifts[:, 1], shifts[:, 2]),
    )
    keep = (centers < neighbors) | ((centers == neighbors) & (first > 0))
    return torch.nonzero(keep).squeeze(1)


def half_neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    structure_index: torch.Tensor,
    cutoff: float,
    n_structures: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair closer than ``cutoff`` once: ``(centers, neighbors, shifts)``.

    Same arguments as :func:`deepmd_like.nn.neighbors.neighbor_list`. Large
    structures use the cell list; the others the full list, halved. For
    pair potentials with analytic forces, which need each pair only once.
    """
    from deepmd_like.nn.neighbors import CELL_LIST_MIN_ATOMS, neighbor_list

    n_structures = cell.shape[0] if n_structures is None else n_structures
    device = positions.device
    parts_i, parts_j, parts_s, parts_structure = [], [], [], []
    with torch.no_grad():
        positions = positions.detach()
        cell = cell.detach().to(positions.dtype)
        n_atoms = torch.bincount(structure_index, minlength=n_structures).tolist()
        small = torch.zeros(n_structures, dtype=torch.bool, device=device)
        for s in range(n_structures):
            if n_atoms[s] == 0:
                continue
            if n_atoms[s] < CELL_LIST_MIN_ATOMS or not applicable(
                cell[s], pbc[s], float(cutoff)
            ):
                small[s] = True
                continue
            members = torch.nonzero(structure_index == s).squeeze(1)
            i, j, shift = structure_pairs(
                positions[members], cell[s], pbc[s], float(cutoff), half=True
            )
            parts_i.append(members[i])
            parts_j.append(members[j])
            parts_s.append(shift)
            parts_structure.append(torch.full_like(i, s))
        if bool(small.any()):
            # All small structures in one batched search; the others keep
            # their numbers but have no atoms there.
            atoms = torch.nonzero(small[structure_index]).squeeze(1)
            full = neighbor_list(
                positions[atoms],
                cell,
                pbc,
                structure_index[atoms],
                float(cutoff),
                n_structures=n_structures,
            )
            keep = half_pairs_of(full.centers, full.neighbors, full.shifts)
            parts_i.append(atoms[full.centers[keep]])
            parts_j.append(atoms[full.neighbors[keep]])
            parts_s.append(full.shifts[keep])
            parts_structure.append(structure_index[parts_i[-1]])
    if not parts_i:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        shifts = torch.zeros(0, 3, dtype=positions.dtype, device=device)
        return empty, empty.clone(), shifts
    if len(parts_i) > 1:
        # Structure by structure, as listed.
        order = torch.sort(torch.cat(parts_structure), stable=True).indices
        return (
            torch.cat(parts_i)[order],
            torch.cat(parts_j)[order],
            torch.cat(parts_s)[order],
        )
    return torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_s)
