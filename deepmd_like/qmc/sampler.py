"""Metropolis–Hastings sampling of |psi|^2 with all-electron Gaussian moves.

Moves are either a plain random walk or, with ``drift=True``, a Langevin
proposal ``x' = x + D(x) + s * eta`` whose drift ``D`` follows
``grad log|psi|``. The drift is limited per electron to at most one step
length, so it stays finite at nodes and nuclei, and the acceptance carries
the ratio of the forward and backward proposal densities, so either kind of
move samples |psi|^2 exactly.
"""

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
    gradient : (n_walkers, n_electrons, 3) tensor or None
        grad log|psi| at ``electrons``, kept only by a sampler with drift.
    """

    electrons: torch.Tensor
    log_psi: torch.Tensor
    step_size: float
    gradient: torch.Tensor | None = None


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
    drift : bool
        Langevin moves along grad log|psi| instead of a plain random walk.
    """

    def __init__(
        self,
        wavefunction: nn.Module,
        generator: torch.Generator,
        target_acceptance: float = 0.55,
        adapt_rate: float = 1.0,
        min_step: float = 1e-3,
        max_step: float = 2.0,
        drift: bool = False,
    ) -> None:
        self.wavefunction = wavefunction
        self.generator = generator
        self.target_acceptance = target_acceptance
        self.adapt_rate = adapt_rate
        self.min_step, self.max_step = min_step, max_step
        self.drift = drift

    @torch.no_grad()
    def init(self, electrons: torch.Tensor, step_size: float = 0.2) -> SamplerState:
        """Evaluate log|psi| at ``electrons`` and return a sampler state."""
        if self.drift:
            log_psi, gradient = self._log_psi_and_gradient(electrons)
            return SamplerState(electrons, log_psi, step_size, gradient)
        _, log_psi = self.wavefunction(electrons)
        return SamplerState(electrons, log_psi, step_size)

    def _log_psi_and_gradient(
        self, electrons: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = electrons.detach().requires_grad_(True)
            _, log_psi = self.wavefunction(x)
            (gradient,) = torch.autograd.grad(log_psi.sum(), x)
        # On a node log|psi| = -inf and its gradient is undefined: no drift.
        gradient = torch.nan_to_num(gradient, nan=0.0, posinf=0.0, neginf=0.0)
        return log_psi.detach(), gradient

    @staticmethod
    def _drift(gradient: torch.Tensor, step_size: float) -> torch.Tensor:
        """Displacement ``s^2 g / sqrt(1 + s^2 |g|^2)`` of each electron.

        It is ``s^2 grad log|psi|`` where the gradient is small and at most
        one step length ``s`` where it diverges (nodes, nuclei).
        """
        norm2 = (gradient * gradient).sum(-1, keepdim=True)
        return step_size**2 * gradient / torch.sqrt(1.0 + step_size**2 * norm2)

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
        if self.drift and state.gradient is None:
            state = self.init(state.electrons, state.step_size)
        electrons, log_psi, gradient = state.electrons, state.log_psi, state.gradient
        step = state.step_size
        accepted = 0.0
        for _ in range(n_steps):
            noise = torch.randn(
                electrons.shape,
                generator=self.generator,
                dtype=electrons.dtype,
                device=self.generator.device,
            ).to(electrons.device)
            if self.drift:
                forward = self._drift(gradient, step)
                proposal = electrons + forward + step * noise
                proposal_log, proposal_gradient = self._log_psi_and_gradient(
                    proposal
                )
                backward = electrons - proposal - self._drift(proposal_gradient, step)
                # log T(x' -> x) - log T(x -> x') of the Gaussian proposals.
                log_t = ((step * noise).pow(2) - backward.pow(2)).sum((-1, -2))
                log_ratio = 2.0 * (proposal_log - log_psi) + log_t / (2 * step**2)
            else:
                proposal = electrons + step * noise
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
            if self.drift:
                gradient = torch.where(
                    accept[:, None, None], proposal_gradient, gradient
                )
            accepted += accept.to(electrons.dtype).mean().item()
        acceptance = accepted / max(n_steps, 1)
        step_size = step
        if adapt:
            miss = acceptance - self.target_acceptance
            step_size *= math.exp(self.adapt_rate * miss)
            step_size = min(max(step_size, self.min_step), self.max_step)
        return SamplerState(electrons, log_psi, step_size, gradient), acceptance
