"""Pretraining: fit the network's orbitals to Hartree–Fock orbitals.

Walkers are drawn from the Hartree–Fock |psi|^2; every determinant's orbital
matrices are pulled towards the Hartree–Fock ones by least squares. This puts
the network near a sensible wavefunction (right shell structure, right
nodes) before the noisy energy minimisation starts.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from deepmd_like.qmc.determinants import safe_slogdet
from deepmd_like.qmc.sampler import MetropolisSampler, SamplerState

logger = logging.getLogger(__name__)


class HartreeFockWavefunction(nn.Module):
    """The Hartree–Fock determinant product, for sampling during pretraining."""

    def __init__(self, orbitals: nn.Module) -> None:
        super().__init__()
        self.orbitals = orbitals

    def forward(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up, down = self.orbitals(electrons)
        sign_up, log_up = safe_slogdet(up)
        sign_down, log_down = safe_slogdet(down)
        return sign_up * sign_down, log_up + log_down


def pretrain_orbitals(
    wavefunction: nn.Module,
    hf_orbitals: nn.Module,
    electrons: torch.Tensor,
    generator: torch.Generator,
    steps: int,
    learning_rate: float = 3e-3,
    moves_per_step: int = 2,
    callback=None,
) -> SamplerState:
    """Fit ``wavefunction.orbitals`` to ``hf_orbitals`` for ``steps`` steps.

    Parameters
    ----------
    wavefunction : nn.Module
        Has ``orbitals(electrons) -> (up (W,K,n,n), down (W,K,m,m))``.
    hf_orbitals : nn.Module
        Maps electrons to ``(up (W,n,n), down (W,m,m))``.
    electrons : (n_walkers, n_electrons, 3) tensor, bohr
        Starting walkers.
    callback : callable, optional
        Called with ``(step, loss)`` after each step.

    Returns
    -------
    SamplerState
        Walkers distributed as the Hartree–Fock |psi|^2.
    """
    sampler = MetropolisSampler(HartreeFockWavefunction(hf_orbitals), generator)
    state = sampler.init(electrons)
    state, _ = sampler.step(state, 20)
    optimizer = torch.optim.Adam(wavefunction.parameters(), lr=learning_rate)
    for step in range(steps):
        state, _ = sampler.step(state, moves_per_step)
        with torch.no_grad():
            target_up, target_down = hf_orbitals(state.electrons)
        up, down = wavefunction.orbitals(state.electrons)
        loss = (up - target_up[:, None]).pow(2).mean() * up.shape[-1] ** 2
        if down.numel():
            misfit = (down - target_down[:, None]).pow(2).mean()
            loss = loss + misfit * down.shape[-1] ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback(step, float(loss.detach()))
    return state
