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

``forward(s, type_i, type_j)`` returns ``(order, values)``: the rows of ``G``
for the pairs ``order`` (a permutation of the input pairs, grouped as is
convenient), so the caller scatters them once.
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
        self, s: torch.Tensor, type_i: torch.Tensor, type_j: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Filters of pairs.

        Parameters
        ----------
        s : (n_pairs, 1) float
            Normalised radial entry of each pair.
        type_i, type_j : (n_pairs,) int64
            Types of the centre and of the neighbour.

        Returns
        -------
        order : (n_pairs,) int64
        values : (n_pairs, M) float
            ``values[k]`` belongs to pair ``order[k]``.
        """
        orders: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        for k, net in enumerate(self.nets):
            if self.type_one_side:
                mask = type_j == k
            else:
                mask = (type_i == k // self.n_types) & (type_j == k % self.n_types)
            index = torch.nonzero(mask).squeeze(-1)
            orders.append(index)
            values.append(net(s.index_select(0, index)))
        return torch.cat(orders), torch.cat(values)


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
        self, s: torch.Tensor, type_i: torch.Tensor, type_j: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        vectors = self.type_vectors(s.dtype, s.device)
        if self.type_one_side:
            x = torch.cat([s, vectors[type_j]], dim=-1)
        else:
            x = torch.cat([s, vectors[type_j], vectors[type_i]], dim=-1)
        order = torch.arange(s.shape[0], device=s.device)
        return order, self.net(x)
