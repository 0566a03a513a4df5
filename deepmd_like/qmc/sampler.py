"""Metropolis–Hastings sampling of |psi|^2 with all-electron Gaussian moves."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SamplerState:
    """Walkers and the sampler's adapted step size.

    Attributes
    ----------
    electrons : (n_walkers, n_electrons, 3) tensor, bohr
    log_psi : (n_walkers,) tensor
        log|psi| at ``electrons``.
    step_size : float, bohr
        Standard deviation of each coordinate's proposed move.
    """

    electrons: torch.Tensor
    log_psi: torch.Tensor
    step_size: float


class MetropolisSampler:
    """Random-walk Metropolis with a step size adapted to a target acceptance.

    Parameters
    ----------
    wavefunction : nn.Module
        Maps electrons to ``(sign, log|psi|)``.
    generator : torch.Generator
        The only source of randomness, so that runs repeat exactly.
    target_acceptance : float
        Acceptance ratio the step size is adapted towards.
    adapt_rate : float
        How strongly one batch of moves changes the step size.
    """

    def __init__(
        self,
        wavefunction: nn.Module,
        generator: torch.Generator,
        target_acceptance: float = 0.55,
        adapt_rate: float = 1.0,
        min_step: float = 1e-3,
        max_step: float = 2.0,
    ) -> None:
        self.wavefunction = wavefunction
        self.generator = generator
        self.target_acceptance = target_acceptance
        self.adapt_rate = adapt_rate
        self.min_step, self.max_step = min_step, max_step

    @torch.no_grad()
    def init(self, electrons: torch.Tensor, step_size: float = 0.2) -> SamplerState:
        """Evaluate log|psi| at ``electrons`` and return a sampler state."""
        _, log_psi = self.wavefunction(electrons)
        return SamplerState(electrons, log_psi, step_size)

    @torch.no_grad()
    def step(
        self, state: SamplerState, n_steps: int = 1, adapt: bool = True
    ) -> tuple[SamplerState, float]:
        """Make ``n_steps`` Metropolis moves of every walker.

        Returns
        -------
        state : SamplerState
        acceptance : float
            Fraction of accepted moves over the ``n_steps``.
        """
        electrons, log_psi = state.electrons, state.log_psi
        accepted = 0.0
        for _ in range(n_steps):
            noise = torch.randn(
                electrons.shape,
                generator=self.generator,
                dtype=electrons.dtype,
                device=self.generator.device,
            ).to(electrons.device)
            proposal = electrons + state.step_size * noise
            _, proposal_log = self.wavefunction(proposal)
            log_ratio = 2.0 * (proposal_log - log_psi)
            # A walker on a node (log|psi| = -inf) always moves; one whose
            # proposal is on a node never does.
            log_ratio = torch.where(
                torch.isnan(log_ratio), torch.zeros_like(log_ratio), log_ratio
            )
            uniform = torch.rand(
                log_ratio.shape,
                generator=self.generator,
                dtype=electrons.dtype,
                device=self.generator.device,
            ).to(electrons.device)
            accept = torch.log(uniform) < log_ratio
            electrons = torch.where(accept[:, None, None], proposal, electrons)
            log_psi = torch.where(accept, proposal_log, log_psi)
            accepted += accept.to(electrons.dtype).mean().item()
        acceptance = accepted / max(n_steps, 1)
        step_size = state.step_size
        if adapt:
            miss = acceptance - self.target_acceptance
            step_size *= math.exp(self.adapt_rate * miss)
            step_size = min(max(step_size, self.min_step), self.max_step)
        return SamplerState(electrons, log_psi, step_size), acceptance
