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


def _image_counts(
    cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> torch.Tensor:
    """Lattice images needed on each side along each direction.

    Parameters
    ----------
    cell : (n_structures, 3, 3) float, Å
    pbc : (n_structures, 3) bool

    Returns
    -------
    (n_structures, 3) int64
        Zero along non-periodic directions.
    """
    # The spacing between lattice planes normal to direction k is 1/|b_k|,
    # with b_k the rows of inv(cell)^T; a sphere of radius rc spans
    # rc*|b_k| planes on each side.
    has_box = pbc.any(1)
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    safe = torch.where(has_box[:, None, None], cell, eye)
    reciprocal_norm = torch.linalg.inv(safe).norm(dim=1)  # columns of inv
    counts = torch.ceil(cutoff * reciprocal_norm).long()
    return torch.where(pbc, counts, torch.zeros_like(counts))


def _check_cells(
    cell: torch.Tensor, pbc: torch.Tensor, n_atoms: torch.Tensor
) -> None:
    """Refuse periodic structures with atoms and a singular cell."""
    volume = torch.linalg.det(cell).abs()
    bad = pbc.any(1) & (n_atoms > 0)
    bad &= ~(torch.isfinite(volume) & (volume >= 1e-8))
    if bool(bad.any()):
        structure = int(torch.nonzero(bad)[0, 0])
        raise UserError(
            f"structure {structure} is periodic but its cell is singular "
            f"(volume {float(volume[structure]):.3g} Å^3); give three "
            "independent lattice vectors"
        )


def _minimum_image_applies(
    cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> torch.Tensor | bool:
    """An orthorhombic, fully periodic box at least two cutoffs wide.

    ``cell`` (3, 3) and ``pbc`` (3,) give a bool; a batch, (n, 3, 3) and
    (n, 3), gives an (n,) bool tensor.
    """
    diagonal = torch.diagonal(cell, dim1=-2, dim2=-1)
    off_diagonal = cell - torch.diag_embed(diagonal)
    applies = (
        pbc.all(-1)
        & (off_diagonal == 0).all(-1).all(-1)
        & (diagonal >= 2 * cutoff).all(-1)
    )
    return bool(applies) if cell.dim() == 2 else applies


def _padded_members(
    members: torch.Tensor, starts: torch.Tensor, n_atoms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Atoms of several structures as a padded table.

    Returns ``(table, valid)``, both (n_structures, max_atoms): the batch
    index of each structure's atoms in order (0 in padding slots) and
    whether a slot holds an atom.
    """
    width = int(n_atoms.max())
    slot = torch.arange(width, device=members.device)
    valid = slot[None, :] < n_atoms[:, None]
    position = torch.where(valid, starts[:, None] + slot[None, :], 0)
    return members[position], valid


def _wrap(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrap periodic directions into [0, 1) and return the integer offsets.

    ``positions`` (n_structures, n, 3), ``cell`` (n_structures, 3, 3),
    ``pbc`` (n_structures, 3); structures without a box are left alone.
    """
    if not bool(pbc.any()):
        return positions, torch.zeros_like(positions)
    fractional = positions @ torch.linalg.inv(cell)
    offsets = torch.floor(fractional) * pbc.to(positions.dtype)[:, None, :]
    return positions - offsets @ cell, offsets


def _minimum_image_pairs(
    positions: torch.Tensor, valid: torch.Tensor, cell: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs in boxes where each pair has at most one image within the cutoff.

    In an orthorhombic box with every edge at least ``2 * cutoff`` two images
    of an atom are at least ``2 * cutoff`` apart, so at most one lies within
    the cutoff of any atom: the nearest, found by rounding the fractional
    difference. This costs one distance per pair instead of 27.

    Parameters
    ----------
    positions : (n_structures, n, 3) float, Å — padded.
    valid : (n_structures, n) bool
    cell : (n_structures, 3, 3) float, Å — diagonal.

    Returns
    -------
    structure, i, j : (n_pairs,) int64 — row of the batch and slots.
    shift : (n_pairs, 3) float
    """
    lengths = torch.diagonal(cell, dim1=-2, dim2=-1)[:, None, :]
    offsets = torch.floor(positions / lengths)
    wrapped = positions - offsets * lengths
    delta = wrapped[:, None, :, :] - wrapped[:, :, None, :]  # [s, i, j, 3]
    image = -torch.round(delta / lengths[:, None])
    delta = delta + image * lengths[:, None]
    within = (delta * delta).sum(-1) < cutoff * cutoff
    within &= valid[:, :, None] & valid[:, None, :]
    within.diagonal(dim1=1, dim2=2).fill_(False)
    s, i, j = torch.nonzero(within, as_tuple=True)
    shift = image[s, i, j] - offsets[s, j] + offsets[s, i]
    return s, i, j, shift


def _image_pairs(
    positions: torch.Tensor,
    valid: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    counts: list[int],
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs of several structures by searching every lattice image.

    The structures share their periodic directions and numbers of images
    (``counts`` on each side along each lattice vector); their atoms are
    padded to one length. Same arguments and results as
    :func:`_minimum_image_pairs`, with ``pbc`` (n_structures, 3) bool; pairs
    come sorted by structure, centre, neighbour and shift.
    """
    n_structures, width = valid.shape
    dtype, device = positions.dtype, positions.device
    periodic = bool(pbc.any())
    # Wrap periodic directions, remembering the offsets, so that atoms many
    # images away cost no extra images.
    wrapped, offsets = _wrap(positions, cell, pbc)
    axes = [torch.arange(-c, c + 1, device=device, dtype=dtype) for c in counts]
    images = torch.cartesian_prod(*axes).reshape(-1, 3)
    n_images = images.shape[0]
    if periodic:
        translations = images @ cell  # [s, image, 3]
    else:
        translations = torch.zeros(
            n_structures, n_images, 3, dtype=dtype, device=device
        )

    cutoff_sq = cutoff * cutoff
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b by one batched matrix product in
    # single precision selects candidates; a margin covers its rounding
    # error, and the candidates are then checked with exact differences.
    screen = wrapped.float()
    screen_translations = translations.float()
    norm_sq = (screen * screen).sum(-1)  # [s, n]
    scale = cutoff_sq + float(norm_sq.max()) + float(
        (screen_translations**2).sum(-1).max()
    )
    margin = 100 * torch.finfo(torch.float32).eps * scale
    threshold = cutoff_sq + margin - norm_sq  # [s, i]
    pair_mask = valid[:, :, None] & valid[:, None, :]  # [s, i, j]
    not_self = ~torch.eye(width, dtype=torch.bool, device=device)
    zero_image = int(((images == 0).all(-1)).nonzero()[0, 0])
    # Flat rows for 1-D gathers (much faster than 2-D advanced indexing).
    wrapped_flat = wrapped.reshape(-1, 3)
    translations_flat = translations.reshape(-1, 3)
    offsets_flat = offsets.reshape(-1, 3)

    per_chunk = max(1, _MAX_CANDIDATES // (width * width))
    found = []
    for first in range(0, n_structures, per_chunk):
        w = screen[first : first + per_chunk]
        n_rows = w.shape[0]
        per_images = max(1, _MAX_CANDIDATES // (n_rows * width * width))
        keys = []
        for start in range(0, n_images, per_images):
            shift_rows = screen_translations[first : first + n_rows]
            shift_rows = shift_rows[:, start : start + per_images]
            shifted = w[:, None, :, :] + shift_rows[:, :, None, :]  # [s, k, j, 3]
            # |b|^2 - 2 a.b against cutoff^2 + margin - |a|^2.
            partial = torch.matmul(w[:, None], shifted.transpose(2, 3)).mul_(-2.0)
            partial += (shifted * shifted).sum(-1)[:, :, None, :]
            candidate = partial < threshold[first : first + n_rows, None, :, None]
            candidate &= pair_mask[first : first + n_rows, None]
            if start <= zero_image < start + per_images:
                candidate[:, zero_image - start] &= not_self
            s, k, i, j = torch.nonzero(candidate, as_tuple=True)
            s = s + first
            k = k + start
            delta = (
                wrapped_flat.index_select(0, s * width + j)
                + translations_flat.index_select(0, s * n_images + k)
                - wrapped_flat.index_select(0, s * width + i)
            )
            keep = (delta * delta).sum(-1) < cutoff_sq
            s, k, i, j = s[keep], k[keep], i[keep], j[keep]
            keys.append(((s * width + i) * width + j) * n_images + k)
        # One integer per pair (structure, centre, neighbour, image): one
        # sort orders them; for a given pair the shift below differs from
        # the image by a constant, so this also orders the shifts.
        key = torch.sort(torch.cat(keys)).values
        k = key % n_images
        pair = key // n_images
        j = pair % width
        pair = pair // width
        i = pair % width
        s = pair // width
        # Back to the caller's unwrapped coordinates:
        # r_j - r_i + shift @ cell with shift = image - offset_j + offset_i.
        shift = (
            images.index_select(0, k)
            - offsets_flat.index_select(0, s * width + j)
            + offsets_flat.index_select(0, s * width + i)
        )
        found.append((s, i, j, shift))
    return tuple(torch.cat(part) for part in zip(*found))


def _small_structure_pairs(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    members: torch.Tensor,
    starts: torch.Tensor,
    n_atoms: torch.Tensor,
    structures: torch.Tensor,
    cutoff: float,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Brute-force pairs of many structures, batched over structures.

    Structures with the same periodic directions and numbers of lattice
    images are searched together with their atoms padded to one length.
    Returns pieces ``(structure, centre, neighbour, shift)`` in batch
    indices, each sorted by structure, centre, neighbour and shift.
    """
    minimum_image = _minimum_image_applies(
        cell[structures], pbc[structures], cutoff
    )
    counts = _image_counts(cell[structures], pbc[structures], cutoff)
    group_keys = torch.cat(
        [minimum_image[:, None].long(), pbc[structures].long(), counts], 1
    )
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, key in enumerate(group_keys.tolist()):
        groups.setdefault(tuple(key), []).append(position)

    pieces = []
    for key, positions_in_list in groups.items():
        chosen = structures[positions_in_list]
        table, valid = _padded_members(members, starts[chosen], n_atoms[chosen])
        padded = positions[table]  # [s, n, 3]
        if key[0]:
            s, i, j, shift = _minimum_image_pairs(
                padded, valid, cell[chosen], cutoff
            )
        else:
            s, i, j, shift = _image_pairs(
                padded, valid, cell[chosen], pbc[chosen], key[4:], cutoff
            )
        pieces.append((chosen[s], table[s, i], table[s, j], shift))
    return pieces


def neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    structure_index: torch.Tensor,
    cutoff: float,
    n_structures: int | None = None,
) -> NeighborList:
    """Find every pair of atoms closer than ``cutoff`` in each structure.

    Small structures are searched over lattice images, many structures in
    one batched tensor operation; large ones (at least
    ``CELL_LIST_MIN_ATOMS`` atoms, in a cell that allows it) with a cell
    list (:mod:`deepmd_like.nn.cell_list`). Both give the same list.

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
        cell = cell.detach().to(positions.dtype)[:n_structures]
        pbc = pbc.to(torch.bool)[:n_structures]
        structure_index = structure_index.to(device)
        # The atoms of each structure, in order: slices of ``members``.
        already_sorted = bool((structure_index[1:] >= structure_index[:-1]).all())
        if already_sorted:
            members = torch.arange(positions.shape[0], device=device)
        else:
            members = torch.sort(structure_index, stable=True).indices
        n_atoms = torch.bincount(structure_index, minlength=n_structures)
        n_atoms = n_atoms[:n_structures]
        starts = torch.cumsum(n_atoms, 0) - n_atoms
        _check_cells(cell, pbc, n_atoms)

        pieces = []
        small = []
        for s, count in enumerate(n_atoms.tolist()):
            if count == 0:
                continue
            if count < CELL_LIST_MIN_ATOMS or not cell_list.applicable(
                cell[s], pbc[s], float(cutoff)
            ):
                small.append(s)
                continue
            atoms = members[int(starts[s]) : int(starts[s]) + count]
            # Sorted by centre and neighbour, like the brute-force search.
            i, j, shift = cell_list.structure_pairs(
                positions[atoms], cell[s], pbc[s], float(cutoff)
            )
            pieces.append((torch.full_like(i, s), atoms[i], atoms[j], shift))
        if small:
            pieces += _small_structure_pairs(
                positions,
                cell,
                pbc,
                members,
                starts,
                n_atoms,
                torch.tensor(small, device=device),
                float(cutoff),
            )
        if not pieces:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return NeighborList(
                empty,
                empty.clone(),
                torch.zeros(0, 3, dtype=positions.dtype, device=device),
            )
        structure, centers_t, neighbors_t, shifts_t = (
            torch.cat(part) for part in zip(*pieces)
        )
        if len(pieces) > 1:
            # Each piece is sorted within its structures; put the structures
            # in order.
            order = torch.sort(structure, stable=True).indices
            centers_t, neighbors_t = centers_t[order], neighbors_t[order]
            shifts_t = shifts_t[order]
        # Sorted by structure, then centre: sorted overall when each
        # structure's atoms are contiguous.
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
