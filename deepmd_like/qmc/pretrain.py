"""Pretraining: fit the network's orbitals to Hartree–Fock orbitals.

Walkers are drawn from the Hartree–Fock |psi|^2; every determinant's orbital
matrices, times the electron–nucleus Jastrow factor of each electron, are
pulled towards the Hartree–Fock ones by least squares relative to the size of
the orbitals at each electron. This puts the network near a sensible
wavefunction (right shell structure, right nodes) before the noisy energy
minimisation starts.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from deepmd_like.qmc.determinants import safe_slogdet
from deepmd_like.qmc.sampler import MetropolisSampler, SamplerState

logger = logging.getLogger(__name__)

# Floor of the per-electron scale in the pretraining misfit, as a fraction of
# its batch mean (see _misfit).
RELATIVE_FLOOR = 0.05


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
    jastrow = getattr(wavefunction, "jastrow", None)
    one_body = getattr(jastrow, "one_body", None)
    for step in range(steps):
        state, _ = sampler.step(state, moves_per_step)
        with torch.no_grad():
            target_up, target_down = hf_orbitals(state.electrons)
        up, down = wavefunction.orbitals(state.electrons)
        if one_body is not None:
            # The wavefunction's orbitals times its electron–nucleus Jastrow
            # factor are what the Hartree–Fock orbitals are compared with.
            factor = torch.exp(one_body(state.electrons))[:, None, :, None]
            n_up = up.shape[-1]
            up = up * factor[:, :, :n_up]
            down = down * factor[:, :, n_up:]
        loss = _misfit(up, target_up)
        if down.numel():
            loss = loss + _misfit(down, target_down)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback(step, float(loss.detach()))
    return state



def _misfit(orbitals: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared orbital error relative to the size of the target at each electron.

    Orbital values span orders of magnitude between the core (large) and the
    valence region (small); a plain squared error would fit the core and
    leave the valence orbitals, which set the chemistry, barely constrained.
    Each electron's row is therefore divided by the squared norm of the
    Hartree–Fock row there, floored at a small fraction of its batch mean
    so that the far tails, where every orbital vanishes, do not dominate.

    Parameters
    ----------
    orbitals : (W, K, n, n) tensor
        Network orbitals of every determinant.
    target : (W, n, n) tensor
        Hartree–Fock orbitals at the same electrons.
    """
    error = (orbitals - target[:, None]).pow(2).sum(-1)  # (W, K, n)
    scale = target.pow(2).sum(-1)[:, None]  # (W, 1, n)
    floor = RELATIVE_FLOOR * scale.mean()
    return (error / (scale + floor)).mean() * orbitals.shape[-1]
