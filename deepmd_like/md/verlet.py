"""A Verlet neighbour list with a skin, rebuilt only when it must be.

The list holds every pair within ``cutoff + skin`` at the time it was built.
It stays valid as long as no pair that was outside ``cutoff + skin`` can
have come within ``cutoff``. With a fixed cell that is guaranteed while every
atom has moved less than half the skin; when the cell changes (a barostat),
positions are compared in the frame of the reference cell and the
deformation's smallest stretch factor is taken into account:

    rebuild if  s_min(F) * (cutoff + skin - 2 * max_displacement) < cutoff

with ``F = inv(cell_ref) @ cell`` and displacements ``d_i = x_i @ inv(cell)
@ cell_ref - x_ref_i``. Displacements are measured on unwrapped positions, so
crossing the box boundary costs nothing.
"""

from __future__ import annotations

import torch

from deepmd_like.nn.cell_list import half_neighbor_list
from deepmd_like.nn.neighbors import NeighborList, neighbor_list


class VerletList:
    """Neighbour list with a skin for a batch of structures.

    Parameters
    ----------
    cutoff : float, Å
        The potential's cutoff.
    skin : float, Å
        Extra distance; larger skins rebuild less often but list more pairs.
    half : bool
        List every pair once (for pair potentials with analytic forces)
        instead of the full list of the potential protocol.
    """

    def __init__(self, cutoff: float, skin: float, half: bool = False) -> None:
        if skin < 0:
            raise ValueError(f"the neighbour-list skin must be >= 0, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.half = bool(half)
        self.pairs: NeighborList | None = None
        self.reference_positions: torch.Tensor | None = None
        self.reference_cell: torch.Tensor | None = None
        self.n_builds = 0

    @property
    def list_cutoff(self) -> float:
        """Radius of the listed pairs, Å."""
        return self.cutoff + self.skin

    def build(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        structure_index: torch.Tensor,
    ) -> NeighborList:
        """Build the list afresh at these positions and cells."""
        if self.half:
            self.pairs = NeighborList(
                *half_neighbor_list(
                    positions, cell, pbc, structure_index, self.list_cutoff
                )
            )
        else:
            self.pairs = neighbor_list(
                positions,
                cell,
                pbc,
                structure_index,
                self.list_cutoff,
                n_structures=cell.shape[0],
            )
        self.reference_positions = positions.detach().clone()
        self.reference_cell = cell.detach().clone()
        self._pbc = pbc
        self._structure_index = structure_index
        self.n_builds += 1
        return self.pairs

    def needs_rebuild(self, positions: torch.Tensor, cell: torch.Tensor) -> bool:
        """Whether some pair may have entered the cutoff unseen."""
        if self.pairs is None or self.reference_positions is None:
            return True
        reference = self.reference_positions
        if torch.equal(cell, self.reference_cell):
            delta = positions - reference
            max_sq = float((delta * delta).sum(1).max()) if len(delta) else 0.0
            return 4.0 * max_sq > self.skin * self.skin
        return self._needs_rebuild_deformed(positions, cell)

    def _needs_rebuild_deformed(
        self, positions: torch.Tensor, cell: torch.Tensor
    ) -> bool:
        reference_cell = self.reference_cell
        has_box = self._pbc.any(1)
        eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
        safe_cell = torch.where(has_box[:, None, None], cell, eye)
        safe_ref = torch.where(has_box[:, None, None], reference_cell, eye)
        # Map the positions into the reference cell's frame.
        to_reference = torch.linalg.solve(safe_cell, safe_ref)  # [S, 3, 3]
        mapped = torch.einsum(
            "ni,nij->nj", positions, to_reference[self._structure_index]
        )
        delta = mapped - self.reference_positions
        max_disp = float((delta * delta).sum(1).max().sqrt()) if len(delta) else 0.0
        deformation = torch.linalg.solve(safe_ref, safe_cell)
        stretch = float(torch.linalg.svdvals(deformation).min())
        return stretch * (self.list_cutoff - 2.0 * max_disp) < self.cutoff

    def update(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        structure_index: torch.Tensor,
    ) -> NeighborList:
        """The current list, rebuilt first if needed."""
        if self.needs_rebuild(positions, cell):
            return self.build(positions, cell, pbc, structure_index)
        return self.pairs

    def state_dict(self) -> dict:
        """What rebuilds this exact list: reference positions and cells."""
        return {
            "reference_positions": self.reference_positions,
            "reference_cell": self.reference_cell,
            "n_builds": self.n_builds,
        }

    def load_state_dict(
        self, state: dict, pbc: torch.Tensor, structure_index: torch.Tensor
    ) -> None:
        """Rebuild the list saved by :meth:`state_dict` (same pairs, same order)."""
        if state["reference_positions"] is None:
            self.pairs = None
            return
        self.build(
            state["reference_positions"], state["reference_cell"], pbc, structure_index
        )
        self.n_builds = int(state["n_builds"])
