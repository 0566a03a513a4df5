"""Wavefunction ansätze: a FermiNet-style network and a Slater–Jastrow baseline.

Every ansatz maps electron positions ``(n_walkers, n_electrons, 3)`` (bohr, up
electrons first) to ``(sign, log|psi|)``, each ``(n_walkers,)``. Orbitals are
smooth functions of the electron positions; the cusps come from
:class:`~deepmd_like.qmc.jastrow.CuspJastrow`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepmd_like.qmc.determinants import safe_slogdet, signed_logsumexp
from deepmd_like.qmc.geometry import electron_electron, electron_nucleus
from deepmd_like.qmc.jastrow import CuspJastrow


def smooth_distance(distance: torch.Tensor) -> torch.Tensor:
    """``sqrt(r^2 + 1) - 1``: a distance feature without a kink at r = 0."""
    return torch.sqrt(distance * distance + 1.0) - 1.0


@dataclass
class FermiNetOptions:
    """Size of the FermiNet-style network."""

    n_determinants: int = 4  # determinants in the sum, each an up and a down one
    hidden_one: int = 32  # width of the one-electron stream
    hidden_two: int = 8  # width of the two-electron stream
    n_layers: int = 3  # interaction layers
    envelope_softening: float = 1.0  # c in exp(-zeta * sqrt(r^2 + c^2)), bohr
    nucleus_range: float = 1.0  # initial range of the electron–nucleus cusp term
    electron_range: float = 1.0  # initial range of the electron–electron cusp term


class FermiNet(nn.Module):
    """One- and two-electron streams, a sum of determinants, envelopes, Jastrow.

    Parameters
    ----------
    nuclei : (n_atoms, 3) tensor, bohr
    charges : (n_atoms,) tensor
    n_up, n_down : int
        Electrons of each spin.
    options : FermiNetOptions
    """

    def __init__(
        self,
        nuclei: torch.Tensor,
        charges: torch.Tensor,
        n_up: int,
        n_down: int,
        options: FermiNetOptions | None = None,
    ) -> None:
        super().__init__()
        options = options or FermiNetOptions()
        self.options = options
        self.n_up, self.n_down = n_up, n_down
        n_atoms = nuclei.shape[0]
        dtype = nuclei.dtype
        self.register_buffer("nuclei", nuclei.clone())
        self.register_buffer("charges", charges.clone())
        width_one, width_two = 4 * n_atoms, 4
        self.one_layers = nn.ModuleList()
        self.two_layers = nn.ModuleList()
        for layer in range(options.n_layers):
            self.one_layers.append(
                nn.Linear(
                    3 * width_one + 2 * width_two, options.hidden_one, dtype=dtype
                )
            )
            # The last layer's two-electron output would feed nothing.
            if layer < options.n_layers - 1:
                self.two_layers.append(
                    nn.Linear(width_two, options.hidden_two, dtype=dtype)
                )
                width_two = options.hidden_two
            width_one = options.hidden_one
        k = options.n_determinants
        self.orbital_up = nn.Linear(width_one, k * n_up, dtype=dtype)
        self.orbital_down = nn.Linear(width_one, k * n_down, dtype=dtype)
        # Envelope weights pi and exponents zeta, per determinant, orbital, atom.
        n_orbitals = k * (n_up + n_down)
        self.envelope_weight = nn.Parameter(
            torch.ones(n_orbitals, n_atoms, dtype=dtype)
        )
        self.envelope_exponent = nn.Parameter(
            torch.ones(n_orbitals, n_atoms, dtype=dtype)
        )
        self.jastrow = CuspJastrow(
            nuclei,
            charges,
            n_up,
            n_up + n_down,
            options.nucleus_range,
            options.electron_range,
        )

    def _features(self, electrons: torch.Tensor) -> torch.Tensor:
        """Last one-electron stream, ``(n_walkers, n_electrons, hidden_one)``."""
        n_up = self.n_up
        vec_en, r_en = electron_nucleus(electrons, self.nuclei)
        one = torch.cat([vec_en, smooth_distance(r_en)[..., None]], -1)
        one = one.flatten(-2)  # (W, N, 4 * n_atoms)
        vec_ee, r_ee = electron_electron(electrons)
        two = torch.cat([vec_ee, smooth_distance(r_ee)[..., None]], -1)  # (W,N,N,4)
        n = electrons.shape[1]
        for layer, one_layer in enumerate(self.one_layers):
            parts = [
                one,
                _spin_mean(one, 1, 0, n_up).expand_as(one),
                _spin_mean(one, 1, n_up, n).expand_as(one),
                _spin_mean(two, 2, 0, n_up),
                _spin_mean(two, 2, n_up, n),
            ]
            new_one = torch.tanh(one_layer(torch.cat(parts, -1)))
            one = new_one + one if new_one.shape == one.shape else new_one
            if layer < len(self.two_layers):
                new_two = torch.tanh(self.two_layers[layer](two))
                two = new_two + two if new_two.shape == two.shape else new_two
        return one

    def orbitals(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Orbital matrices of every determinant.

        Returns
        -------
        up : (n_walkers, n_determinants, n_up, n_up) tensor
            ``up[w, k, i, j]`` is orbital j of determinant k at up electron i.
        down : (n_walkers, n_determinants, n_down, n_down) tensor
        """
        features = self._features(electrons)
        n_walkers = electrons.shape[0]
        k = self.options.n_determinants
        n_up, n_down = self.n_up, self.n_down
        _, r_en = electron_nucleus(electrons, self.nuclei)  # (W, N, A)
        soft = torch.sqrt(r_en**2 + self.options.envelope_softening**2)
        zeta = self.envelope_exponent.abs()
        # (W, N, n_orbitals): sum over atoms of pi * exp(-zeta * soft distance).
        envelope = torch.einsum(
            "oa,wnoa->wno",
            self.envelope_weight,
            torch.exp(-zeta[None, None] * soft[:, :, None, :]),
        )
        env_up = envelope[:, :n_up, : k * n_up]
        env_down = envelope[:, n_up:, k * n_up :]
        up = self.orbital_up(features[:, :n_up]) * env_up
        down = self.orbital_down(features[:, n_up:]) * env_down
        up = up.reshape(n_walkers, n_up, k, n_up).permute(0, 2, 1, 3)
        down = down.reshape(n_walkers, n_down, k, n_down).permute(0, 2, 1, 3)
        return up, down

    def forward(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sign and log|psi|, each ``(n_walkers,)``."""
        up, down = self.orbitals(electrons)
        sign_up, log_up = safe_slogdet(up)
        sign_down, log_down = safe_slogdet(down)
        sign, logabs = signed_logsumexp(sign_up * sign_down, log_up + log_down)
        return sign, logabs + self.jastrow(electrons)


def _spin_mean(values: torch.Tensor, dim: int, start: int, stop: int) -> torch.Tensor:
    """Mean over electrons ``start:stop`` along ``dim``; zeros if there are none.

    The one-electron stream (``dim=1``) keeps the axis, the two-electron
    stream (``dim=2``) drops it.
    """
    part = values.narrow(dim, start, stop - start)
    if stop > start:
        return part.mean(dim, keepdim=dim == 1)
    return part.sum(dim, keepdim=dim == 1)


class SlaterJastrow(nn.Module):
    """Hartree–Fock determinant(s) times the cusp Jastrow.

    Parameters
    ----------
    orbitals : callable
        Maps electrons ``(n_walkers, n_electrons, 3)`` to the Hartree–Fock
        orbital matrices ``(up (W, n_up, n_up), down (W, n_down, n_down))``.
    nuclei, charges, n_up, n_down
        As for :class:`FermiNet`.
    nucleus_range : float
        Initial range of the cusp term; small, because Gaussian orbitals
        already have the right shape away from the nucleus.
    """

    def __init__(
        self,
        orbitals: nn.Module,
        nuclei: torch.Tensor,
        charges: torch.Tensor,
        n_up: int,
        n_down: int,
        nucleus_range: float = 0.1,
        electron_range: float = 1.0,
    ) -> None:
        super().__init__()
        self.hf = orbitals
        self.n_up, self.n_down = n_up, n_down
        self.register_buffer("nuclei", nuclei.clone())
        self.register_buffer("charges", charges.clone())
        self.jastrow = CuspJastrow(
            nuclei, charges, n_up, n_up + n_down, nucleus_range, electron_range
        )

    def orbitals(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up, down = self.hf(electrons)
        return up[:, None], down[:, None]

    def forward(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up, down = self.hf(electrons)
        sign_up, log_up = safe_slogdet(up)
        sign_down, log_down = safe_slogdet(down)
        return sign_up * sign_down, log_up + log_down + self.jastrow(electrons)
