"""Embedding nets: the radial filters ``G(s)`` of the ``se_e2_a`` descriptor.

An embedding bank maps the normalised radial entry ``s`` of each pair to a
row of ``G``. Three kinds share one interface (so the descriptor, freezing
and compression need not know which is used):

- :class:`TypedEmbedding`: one net per neighbour type (``type_one_side``) or
  per (centre type, neighbour type) pair;
- :class:`SharedEmbedding`: one net fed with ``s`` and learned type vectors
  (a type embedding);
- :class:`~deepmd_like.nn.tabulate.TabulatedEmbedding`: piecewise quintic
  tables of either, for fast inference.

``forward(s, center_types, neighbor_type)`` maps a dense block of the
radial entries of one neighbour type, ``s`` of shape (n_atoms, n, 1), to
filters (n_atoms, n, M).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from deepmd_like.nn.networks import MLP


class TypedEmbedding(nn.Module):
    """One embedding net per neighbour type or per type pair.

    Parameters
    ----------
    n_types : int
    neuron : sequence of int
        Widths; the last is the number of filters ``M``.
    type_one_side : bool
        One net per neighbour type (True) or per (centre, neighbour) pair.
    resnet_dt, activation, generator, dtype
        As for :class:`~deepmd_like.nn.networks.MLP`.
    """

    def __init__(
        self,
        n_types: int,
        neuron: Sequence[int],
        type_one_side: bool,
        resnet_dt: bool,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.n_types = n_types
        self.type_one_side = bool(type_one_side)
        n_nets = n_types if type_one_side else n_types * n_types
        self.nets = nn.ModuleList(
            [
                MLP(1, neuron, None, activation, resnet_dt, generator, dtype)
                for _ in range(n_nets)
            ]
        )
        self.n_out = int(neuron[-1])

    def net_keys(self) -> List[Tuple[int, int]]:
        """(centre type, neighbour type) of each net; centre -1 = any."""
        if self.type_one_side:
            return [(-1, t) for t in range(self.n_types)]
        return [(a, b) for a in range(self.n_types) for b in range(self.n_types)]

    def type_vectors(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """No learned type vectors: an empty (0, 0) tensor."""
        return torch.zeros(0, 0, dtype=dtype, device=device)

    def forward(
        self, s: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        """Filters of a block of neighbours of one type.

        Parameters
        ----------
        s : (n_atoms, n, 1) float
            Normalised radial entries.
        center_types : (n_atoms,) int64
            Type of each row's central atom.
        neighbor_type : int
            Type of every neighbour in the block.

        Returns
        -------
        (n_atoms, n, M) float
        """
        n_atoms, n = s.shape[0], s.shape[1]
        if self.type_one_side:
            for k, net in enumerate(self.nets):
                if k == neighbor_type:
                    return net(s)
        out = torch.zeros(n_atoms, n, self.n_out, dtype=s.dtype, device=s.device)
        for k, net in enumerate(self.nets):
            if k % self.n_types == neighbor_type:
                rows = torch.nonzero(center_types == k // self.n_types).squeeze(-1)
                out = out.index_put((rows,), net(s.index_select(0, rows)))
        return out


    def contract(
        self, env: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        """``sum_slots env^T G(env[..., 0])`` for a block of one neighbour type.

        Parameters
        ----------
        env : (n_atoms, n, 4) float
            Normalised environment rows of the block.
        center_types : (n_atoms,) int64
        neighbor_type : int

        Returns
        -------
        (n_atoms, 4, M) float
        """
        n_atoms = env.shape[0]
        if self.type_one_side:
            for k, net in enumerate(self.nets):
                if k == neighbor_type:
                    return torch.bmm(env.transpose(1, 2), net(env[:, :, 0:1]))
        # Per centre type, so no filter block is built for the whole batch.
        out = torch.zeros(n_atoms, 4, self.n_out, dtype=env.dtype, device=env.device)
        for k, net in enumerate(self.nets):
            if k % self.n_types == neighbor_type:
                rows = torch.nonzero(center_types == k // self.n_types).squeeze(-1)
                part = env.index_select(0, rows)
                out = out.index_put(
                    (rows,), torch.bmm(part.transpose(1, 2), net(part[:, :, 0:1]))
                )
        return out


class SharedEmbedding(nn.Module):
    """One embedding net for all types, fed with learned type vectors.

    The input of the net is ``[s, e(type_j)]`` (``type_one_side``) or
    ``[s, e(type_j), e(type_i)]``, with ``e`` the type embedding: a small net
    applied to the one-hot type.

    Parameters
    ----------
    n_types : int
    neuron : sequence of int
    type_one_side : bool
    type_neuron : sequence of int
        Widths of the type-embedding net; the last is the vector length.
    resnet_dt, activation, generator, dtype
    """

    def __init__(
        self,
        n_types: int,
        neuron: Sequence[int],
        type_one_side: bool,
        type_neuron: Sequence[int],
        resnet_dt: bool,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.n_types = n_types
        self.type_one_side = bool(type_one_side)
        self.type_net = MLP(
            n_types, type_neuron, None, activation, resnet_dt, generator, dtype
        )
        width = int(type_neuron[-1])
        n_in = 1 + width * (1 if type_one_side else 2)
        self.net = MLP(n_in, neuron, None, activation, resnet_dt, generator, dtype)
        self.type_width = width
        self.n_out = int(neuron[-1])

    def type_vectors(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(n_types, width) learned vector of each type."""
        eye = torch.eye(self.n_types, dtype=dtype, device=device)
        return self.type_net(eye)

    def forward(
        self, s: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        n_atoms, n = s.shape[0], s.shape[1]
        vectors = self.type_vectors(s.dtype, s.device)
        parts = [s, vectors[neighbor_type].expand(n_atoms, n, self.type_width)]
        if not self.type_one_side:
            parts.append(
                vectors[center_types].unsqueeze(1).expand(n_atoms, n, self.type_width)
            )
        return self.net(torch.cat(parts, dim=-1))

    def contract(
        self, env: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        """``sum_slots env^T G`` for a block of one neighbour type (n_atoms, 4, M)."""
        filters = self.forward(env[:, :, 0:1], center_types, neighbor_type)
        return torch.bmm(env.transpose(1, 2), filters)
