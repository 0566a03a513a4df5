"""The smooth-edition Deep Potential descriptor ``se_e2_a``.

For atom ``i`` with padded, normalised environment matrix ``R`` (``n_slots x 4``)
and filters ``G = G(R[:, 0])`` (``n_slots x M``, one embedding net per
neighbour type or type pair), the descriptor is::

    T = R^T G / n_slots            (4 x M)
    D = T^T T[:, :axis_neuron]     (M x axis_neuron), flattened

which is invariant under rotations, translations and permutations of
same-type neighbours and smooth in the positions. ``R`` is normalised per
centre type: ``(row - davg[type_i]) / dstd[type_i]`` with ``davg`` non-zero
only in the radial column. Padded slots hold the normalised zero row, so a
neighbour crossing the cutoff turns continuously into padding; an atom with
no neighbour at all therefore has a constant (finite) descriptor.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from deepmd_like.nn.embedding import SharedEmbedding, TypedEmbedding
from deepmd_like.nn.environment import environment_rows


class DescriptorSeE2a(nn.Module):
    """The ``se_e2_a`` descriptor of atoms from their kept neighbour pairs.

    Parameters
    ----------
    n_types : int
    sel : sequence of int
        Slots per neighbour type.
    rcut, rcut_smth : float, Å
    neuron : sequence of int
        Embedding-net widths; ``M = neuron[-1]``.
    axis_neuron : int
        Number of filters in the second factor of ``D``.
    type_one_side : bool
    resnet_dt : bool
    activation : str
    generator : torch.Generator
    dtype : torch.dtype
    type_neuron : sequence of int, optional
        With a type embedding, its widths; one shared embedding net then.
    """

    def __init__(
        self,
        n_types: int,
        sel: Sequence[int],
        rcut: float,
        rcut_smth: float,
        neuron: Sequence[int],
        axis_neuron: int,
        type_one_side: bool,
        resnet_dt: bool,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        type_neuron: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        self.n_types = int(n_types)
        self.sel: List[int] = [int(n) for n in sel]
        self.n_slots = int(sum(self.sel))
        self.rcut = float(rcut)
        self.rcut_smth = float(rcut_smth)
        self.axis_neuron = int(axis_neuron)
        self.n_filters = int(neuron[-1])
        self.register_buffer("davg", torch.zeros(n_types, 4, dtype=dtype))
        self.register_buffer("dstd", torch.ones(n_types, 4, dtype=dtype))
        if type_neuron:
            self.embedding: nn.Module = SharedEmbedding(
                n_types, neuron, type_one_side, type_neuron, resnet_dt, activation,
                generator, dtype,
            )
        else:
            self.embedding = TypedEmbedding(
                n_types, neuron, type_one_side, resnet_dt, activation, generator,
                dtype,
            )

    @property
    def dim_out(self) -> int:
        """Length of the flattened descriptor, ``M * axis_neuron``."""
        return self.n_filters * self.axis_neuron

    def normalised_rows(
        self, rij: torch.Tensor, type_i: torch.Tensor
    ) -> torch.Tensor:
        """(n_pairs, 4) environment rows of pairs, normalised by centre type."""
        rows = environment_rows(rij, self.rcut_smth, self.rcut)
        return (rows - self.davg[type_i]) / self.dstd[type_i]

    def padding_rows(self) -> torch.Tensor:
        """(n_types, 4) normalised row of an empty slot, per centre type."""
        return -self.davg / self.dstd

    def forward(
        self,
        rij: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        rank: torch.Tensor,
        types: torch.Tensor,
    ) -> torch.Tensor:
        """Descriptors of all atoms.

        Parameters
        ----------
        rij : (n_pairs, 3) float, Å
            Vectors of the kept pairs, sorted by centre and neighbour type.
        centers, neighbors : (n_pairs,) int64
        rank : (n_pairs,) int64
            Slot of each pair among its centre's neighbours of the same type.
        types : (n_atoms,) int64
            Type index of every atom.

        Returns
        -------
        (n_atoms, M * axis_neuron) float
        """
        n_atoms = types.shape[0]
        n_types = self.n_types
        type_i = types[centers]
        type_j = types[neighbors]
        rows = self.normalised_rows(rij, type_i)  # [n_pairs, 4]
        pad = self.padding_rows()  # [n_types, 4]
        pad_of_atom = pad[types]  # [n_atoms, 4]
        pad_s = pad[:, 0:1].unsqueeze(1)  # [n_types, 1, 1]
        all_types = torch.arange(n_types, device=types.device)

        # Each neighbour type is one dense block of n_max slots per atom
        # (n_max = the most such neighbours any atom has); the remaining
        # sel - n_max empty slots all hold the padding row and add up to
        # (sel - n_max) * pad_row x G(pad_s), computed once per centre type.
        t = torch.zeros(n_atoms, 4, self.n_filters, dtype=rows.dtype,
                        device=rows.device)
        for tj in range(n_types):
            in_block = torch.nonzero(type_j == tj).squeeze(-1)
            block_rank = rank.index_select(0, in_block)
            n_max = int(block_rank.max()) + 1 if in_block.shape[0] > 0 else 0
            if n_max > 0:
                env = pad_of_atom.unsqueeze(1).expand(n_atoms, n_max, 4)
                index = centers.index_select(0, in_block) * n_max + block_rank
                env = env.reshape(n_atoms * n_max, 4).index_put(
                    (index,), rows.index_select(0, in_block)
                ).view(n_atoms, n_max, 4)
                t = t + self.embedding.contract(env, types, tj)
            n_empty = self.sel[tj] - n_max
            if n_empty > 0:
                empty = self.embedding(pad_s, all_types, tj)  # [n_types, 1, M]
                outer = pad.unsqueeze(2) * empty  # [n_types, 4, M]
                t = t + n_empty * outer[types]
        t = t / self.n_slots  # [n_atoms, 4, M]
        d = torch.bmm(t.transpose(1, 2), t[:, :, : self.axis_neuron])
        return d.reshape(n_atoms, self.dim_out)
