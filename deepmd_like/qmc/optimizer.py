"""Energy minimisation: clipped local energies, SPRING natural gradient, Adam.

The gradient of the variational energy is
``2 E[(E_L - E) d log|psi| / d theta]``. The local energies enter it clipped
around their median, which tames the rare walkers near a node; the energy
that is reported is never clipped.

SPRING (Goldshmidt, Mugglestone and others, 2024) solves the stochastic
reconfiguration system in sample space: with the centred, scaled per-walker
gradients O (n_walkers x n_params) and centred local energies e,

    d = O^T (O O^T + lambda I)^-1 (-e - mu O d_prev) + mu d_prev,

which needs one n_walkers x n_walkers Cholesky factorisation per step; mu = 0
is minSR. The damping lambda keeps the system positive definite however
ill-conditioned O O^T is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


def clip_local_energies(energies: torch.Tensor, width: float = 5.0) -> torch.Tensor:
    """Clip to ``median +- width * mean |E_L - median|``.

    Parameters
    ----------
    energies : (n_walkers,) tensor, Hartree
        Non-finite values (walkers on a node) are replaced by the median.
    """
    finite = torch.isfinite(energies)
    median = energies[finite].median() if finite.any() else energies.new_zeros(())
    energies = torch.where(finite, energies, median)
    spread = (energies - median).abs().mean()
    return energies.clamp(median - width * spread, median + width * spread)


def per_walker_log_psi_gradients(
    wavefunction: nn.Module, electrons: torch.Tensor
) -> tuple[torch.Tensor, list[str]]:
    """d log|psi(x_w)| / d theta for every walker, flattened.

    Returns
    -------
    gradients : (n_walkers, n_params) tensor
    names : list of str
        Parameter names in the order of the flattened columns.
    """
    params = {k: v.detach() for k, v in wavefunction.named_parameters()}
    buffers = dict(wavefunction.named_buffers())

    def single(p: dict, x: torch.Tensor) -> torch.Tensor:
        _, logabs = functional_call(wavefunction, (p, buffers), (x[None],))
        return logabs[0]

    grads = vmap(grad(single), in_dims=(None, 0))(params, electrons.detach())
    names = list(params)
    flat = torch.cat([grads[k].reshape(electrons.shape[0], -1) for k in names], 1)
    return flat, names


@dataclass
class SpringOptions:
    """Settings of the SPRING natural-gradient optimiser."""

    learning_rate: float = 0.05  # initial step length
    learning_rate_decay: float = 1000.0  # lr = lr0 / (1 + step / decay)
    damping: float = 1e-3  # lambda added to the walker-space matrix
    momentum: float = 0.9  # mu; 0 gives minSR
    max_norm: float = 1e-3  # bound on lr^2 |O d|^2, the step in the Fisher metric


class Spring:
    """SPRING / minSR optimiser acting on a module's parameters in place."""

    def __init__(self, wavefunction: nn.Module, options: SpringOptions) -> None:
        self.wavefunction = wavefunction
        self.options = options
        self.previous: torch.Tensor | None = None
        self.n_steps = 0

    def step(self, electrons: torch.Tensor, energies: torch.Tensor) -> dict:
        """One update from walkers and their clipped local energies.

        Returns
        -------
        dict
            ``learning_rate`` and ``fisher_norm`` of the step taken.
        """
        opts = self.options
        o, names = per_walker_log_psi_gradients(self.wavefunction, electrons)
        n_walkers = o.shape[0]
        # A row with any NaN or inf has a non-finite sum: one pass over o.
        finite = torch.isfinite(o.sum(1)) & torch.isfinite(energies)
        if not bool(finite.all()):
            o = torch.where(finite[:, None], o, torch.zeros_like(o))
        scale = n_walkers**-0.5
        # o is a fresh tensor: centre and scale it in place (it is large).
        o.sub_(o.mean(0)).mul_(scale)
        residual = -(energies - energies.mean()) * scale
        residual = torch.where(finite, residual, torch.zeros_like(residual))
        if self.previous is None:
            self.previous = torch.zeros(o.shape[1], dtype=o.dtype, device=o.device)
        mu = opts.momentum
        rhs = residual - mu * (o @ self.previous)
        matrix = o @ o.T
        direction = o.T @ _damped_solve(matrix, rhs, opts.damping) + mu * self.previous
        self.previous = direction
        lr = opts.learning_rate / (1.0 + self.n_steps / opts.learning_rate_decay)
        fisher = float((lr * (o @ direction)).pow(2).sum())
        if fisher > opts.max_norm:
            lr *= (opts.max_norm / fisher) ** 0.5
        self._apply(names, lr * direction)
        self.n_steps += 1
        return {"learning_rate": lr, "fisher_norm": min(fisher, opts.max_norm)}

    def _apply(self, names: list[str], update: torch.Tensor) -> None:
        params = dict(self.wavefunction.named_parameters())
        offset = 0
        with torch.no_grad():
            for name in names:
                p = params[name]
                p.add_(update[offset : offset + p.numel()].reshape(p.shape))
                offset += p.numel()

    def state_dict(self) -> dict:
        return {"previous": self.previous, "n_steps": self.n_steps}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state["previous"]
        self.n_steps = int(state["n_steps"])


def _damped_solve(
    matrix: torch.Tensor, rhs: torch.Tensor, damping: float
) -> torch.Tensor:
    """Solve ``(matrix + damping I) x = rhs`` for a symmetric PSD matrix.

    The damping is raised tenfold until the Cholesky factorisation succeeds,
    so an ill-conditioned (even singular or non-finite) system never gives NaN.
    """
    matrix = torch.where(torch.isfinite(matrix), matrix, torch.zeros_like(matrix))
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    scale = float(matrix.diagonal().abs().max()) if matrix.numel() else 1.0
    lam = damping
    for _ in range(20):
        factor, info = torch.linalg.cholesky_ex(matrix + lam * eye)
        if int(info) == 0:
            return torch.cholesky_solve(rhs[:, None], factor)[:, 0]
        lam = max(lam * 10.0, 1e-12 * scale)
    return torch.zeros_like(rhs)


class AdamEnergy:
    """Adam on the variational energy, through the usual surrogate loss."""

    def __init__(self, wavefunction: nn.Module, learning_rate: float = 1e-3) -> None:
        self.wavefunction = wavefunction
        self.optimizer = torch.optim.Adam(wavefunction.parameters(), lr=learning_rate)

    def step(self, electrons: torch.Tensor, energies: torch.Tensor) -> dict:
        self.optimizer.zero_grad()
        _, logabs = self.wavefunction(electrons.detach())
        finite = torch.isfinite(logabs)
        centred = (energies - energies.mean()).detach()
        loss = 2.0 * (centred * torch.where(finite, logabs, torch.zeros_like(logabs)))
        loss.mean().backward()
        self.optimizer.step()
        return {"learning_rate": self.optimizer.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
