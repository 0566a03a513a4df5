"""Fitting nets: atomic energies from descriptors.

One net per element (or, with a type embedding, one net fed with the
element's type vector as well) maps the descriptor of an atom to its energy;
a per-element energy shift, fitted by least squares to the training
energies, is added in float64. The nets' output layers start at zero bias so
a fresh model predicts the shifts plus a small correction, and training on
energies of hundreds of eV per atom starts from a sensible point.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from torch import nn

from deepmd_like.errors import UserError
from deepmd_like.nn.networks import MLP


class EnergyFitting(nn.Module):
    """Per-element fitting nets plus float64 energy shifts.

    Parameters
    ----------
    n_types : int
    n_in : int
        Descriptor length.
    neuron : sequence of int
        Hidden widths, e.g. ``[240, 240, 240]``.
    resnet_dt : bool
    activation : str
    generator : torch.Generator
    dtype : torch.dtype
    type_width : int
        With a type embedding, the length of the type vectors appended to
        the descriptor (one shared net); 0 for one net per element.
    """

    def __init__(
        self,
        n_types: int,
        n_in: int,
        neuron: Sequence[int],
        resnet_dt: bool,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        type_width: int = 0,
    ) -> None:
        super().__init__()
        self.n_types = int(n_types)
        self.shared = type_width > 0
        n_nets = 1 if self.shared else n_types
        nets = []
        for _ in range(n_nets):
            net = MLP(n_in + type_width, neuron, 1, activation, resnet_dt, generator,
                      dtype)
            with torch.no_grad():
                net.layers[-1].bias.zero_()
            nets.append(net)
        self.nets = nn.ModuleList(nets)
        self.register_buffer("energy_shift", torch.zeros(n_types, dtype=torch.float64))

    def _apply(self, fn, recurse=True):
        # The shifts (hundreds of eV per atom for DFT energies) stay float64
        # when the model is cast to float32.
        shift = self.energy_shift
        super()._apply(fn, recurse)
        self.energy_shift = shift.to(self.energy_shift.device, torch.float64)
        return self

    def forward(
        self, descriptor: torch.Tensor, types: torch.Tensor, type_vectors: torch.Tensor
    ) -> torch.Tensor:
        """Atomic energies.

        Parameters
        ----------
        descriptor : (n_atoms, n_in) float
        types : (n_atoms,) int64
        type_vectors : (n_types, type_width) float
            Ignored without a type embedding.

        Returns
        -------
        (n_atoms,) float64, eV
        """
        if self.shared:
            x = torch.cat([descriptor, type_vectors[types]], dim=-1)
            out = self.nets[0](x).squeeze(-1)
        else:
            orders: List[torch.Tensor] = []
            values: List[torch.Tensor] = []
            for t, net in enumerate(self.nets):
                index = torch.nonzero(types == t).squeeze(-1)
                orders.append(index)
                values.append(net(descriptor.index_select(0, index)).squeeze(-1))
            out = torch.zeros(
                types.shape[0], dtype=descriptor.dtype, device=descriptor.device
            ).index_put((torch.cat(orders),), torch.cat(values))
        return out.to(torch.float64) + self.energy_shift[types]


def compute_energy_shift(
    atom_counts: np.ndarray | torch.Tensor,
    energies: np.ndarray | torch.Tensor,
    rcond: float | None = None,
) -> np.ndarray:
    """Per-element energies that best explain total energies (least squares).

    Solves ``min_b sum_f (energies[f] - atom_counts[f] @ b)^2``. Elements that
    never occur get 0; when the counts do not determine ``b`` (e.g. every
    frame has the same composition), the minimum-norm solution is returned,
    which still reproduces the mean energy.

    Parameters
    ----------
    atom_counts : (n_frames, n_types) int or float
        Number of atoms of each element in each frame.
    energies : (n_frames,) float, eV
        Total energies.
    rcond : float, optional
        Cut-off for small singular values (numpy's default when None).

    Returns
    -------
    (n_types,) float64 ndarray, eV per atom
    """
    counts = np.asarray(atom_counts, dtype=np.float64)
    energy = np.asarray(energies, dtype=np.float64).reshape(-1)
    if counts.ndim != 2 or counts.shape[0] != energy.shape[0]:
        raise ValueError(
            f"atom_counts must be (n_frames, n_types) and energies (n_frames,); "
            f"got {counts.shape} and {energy.shape}"
        )
    if counts.shape[0] == 0:
        raise UserError("cannot fit energy shifts: no frames with energies")
    present = counts.sum(0) > 0
    shift = np.zeros(counts.shape[1])
    solution, *_ = np.linalg.lstsq(counts[:, present], energy, rcond=rcond)
    shift[present] = solution
    return shift
