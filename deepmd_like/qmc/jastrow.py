"""A Jastrow factor that carries the exact Kato cusp conditions.

The orbitals of the ansatz are smooth where an electron meets a nucleus or
another electron; the cusps of the exact wavefunction come from this factor
alone, so the singular Coulomb terms of the local energy cancel exactly:

    J = sum_{i,I} -Z_I a_I r_iI / (a_I + r_iI)
      + sum_{i<j} c_ij b_s r_ij / (b_s + r_ij)

with c_ij = 1/2 for electrons of opposite spin and 1/4 for the same spin.
Each term has slope -Z_I (resp. c_ij) at contact and tends to a constant at
large distance; the ranges a_I > 0 and b_s > 0 are learned.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepmd_like.qmc.geometry import electron_electron, electron_nucleus


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class CuspJastrow(nn.Module):
    """Electron–nucleus and electron–electron cusp factor, log J.

    Parameters
    ----------
    nuclei : (n_atoms, 3) tensor, bohr
    charges : (n_atoms,) tensor
    n_up : int
        Electrons 0 .. n_up-1 are spin up, the rest spin down.
    nucleus_range : float
        Initial a_I in bohr.
    electron_range : float
        Initial b_s in bohr.
    """

    def __init__(
        self,
        nuclei: torch.Tensor,
        charges: torch.Tensor,
        n_up: int,
        n_electrons: int,
        nucleus_range: float = 1.0,
        electron_range: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("nuclei", nuclei.clone())
        self.register_buffer("charges", charges.clone())
        n_atoms = nuclei.shape[0]
        self.raw_nucleus_range = nn.Parameter(
            torch.full((n_atoms,), _inverse_softplus(nucleus_range), dtype=nuclei.dtype)
        )
        # One range for same-spin pairs, one for opposite-spin pairs.
        self.raw_electron_range = nn.Parameter(
            torch.full((2,), _inverse_softplus(electron_range), dtype=nuclei.dtype)
        )
        spins = torch.arange(n_electrons) < n_up
        same = spins[:, None] == spins[None, :]
        upper = torch.triu(torch.ones(n_electrons, n_electrons, dtype=torch.bool), 1)
        self.register_buffer("pair_mask", upper.to(nuclei.dtype))
        self.register_buffer("same_spin", same.to(torch.long))
        slope = torch.where(same, 0.25, 0.5).to(nuclei.dtype)
        self.register_buffer("pair_slope", slope)

    def one_body(self, electrons: torch.Tensor) -> torch.Tensor:
        """The electron–nucleus part of log J for each electron, ``(W, N)``.

        It is a product of one-electron factors, so ``exp(one_body)`` can be
        folded into the orbitals row by row (pretraining does this).
        """
        _, r_en = electron_nucleus(electrons, self.nuclei)
        a = nn.functional.softplus(self.raw_nucleus_range)
        return -(self.charges * a * r_en / (a + r_en)).sum(-1)

    def forward(self, electrons: torch.Tensor) -> torch.Tensor:
        """log J for each walker.

        Parameters
        ----------
        electrons : (n_walkers, n_electrons, 3) tensor, bohr

        Returns
        -------
        (n_walkers,) tensor
        """
        nucleus_term = self.one_body(electrons).sum(-1)
        _, r_ee = electron_electron(electrons)
        b = nn.functional.softplus(self.raw_electron_range)[self.same_spin]
        pair = self.pair_slope * b * r_ee / (b + r_ee)
        electron_term = (pair * self.pair_mask).sum((-1, -2))
        return nucleus_term + electron_term
