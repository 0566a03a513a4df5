"""Tabulated embedding nets ("model compression") for fast inference.

An embedding net is a smooth function ``G(s)`` of one variable (for each
centre/neighbour type combination), so it can be replaced by a table: on a
uniform grid of step ``h`` over the range that ``s`` can take, each interval
holds the quintic polynomial that matches ``G``, ``G'`` and ``G''`` at both
ends (quintic Hermite interpolation). The result is continuous with
continuous first and second derivatives, and its error falls as ``h^6``.

Evaluating a table is a weighted sum of six coefficient rows, which is
exactly what ``embedding_bag`` computes (rows ``6 * interval + k`` with
weights ``u^k``, ``u`` the position in the interval); its gradient with
respect to the weights gives forces by ordinary autograd, on CPU and CUDA,
and it scripts for frozen models. It is not twice differentiable with
respect to positions, so a compressed model is for inference, not training.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import List, Tuple

import torch
from torch import nn

logger = logging.getLogger(__name__)


def _hermite_coefficients(
    y: torch.Tensor, dy: torch.Tensor, d2y: torch.Tensor, step: float
) -> torch.Tensor:
    """Quintic coefficients in ``u = (s - s_k) / step`` for every interval.

    Parameters
    ----------
    y, dy, d2y : (n_points, M) float64
        Values and first and second derivatives at the grid points.
    step : float

    Returns
    -------
    (n_points - 1, 6, M) float64, coefficients of ``u^0 .. u^5``.
    """
    y0, y1 = y[:-1], y[1:]
    d0, d1 = dy[:-1] * step, dy[1:] * step
    s0, s1 = d2y[:-1] * step**2, d2y[1:] * step**2
    delta = y1 - y0
    a3 = 10 * delta - 6 * d0 - 4 * d1 - 1.5 * s0 + 0.5 * s1
    a4 = -15 * delta + 8 * d0 + 7 * d1 + 1.5 * s0 - s1
    a5 = 6 * delta - 3 * d0 - 3 * d1 - 0.5 * s0 + 0.5 * s1
    return torch.stack([y0, d0, 0.5 * s0, a3, a4, a5], dim=1)


def _derivatives(
    function, x: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values, first and second derivatives of a vector function of a scalar."""
    from torch.func import jvp

    ones = torch.ones_like(x)

    def first(z):
        return jvp(function, (z,), (ones,))

    def slope(z):
        return first(z)[1]

    with warnings.catch_warnings():
        # Forward-mode AD loads decompositions through TorchScript, which
        # announces its deprecation; nothing here is scripted.
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r".*torch\.jit.*")
        (y, dy) = first(x)
        _, d2y = jvp(slope, (x,), (ones,))
    return y, dy, d2y


class TabulatedEmbedding(nn.Module):
    """Piecewise quintic tables standing in for an embedding bank.

    Parameters
    ----------
    source : embedding bank
        A :class:`~deepmd_like.nn.embedding.TypedEmbedding` or
        :class:`~deepmd_like.nn.embedding.SharedEmbedding`.
    n_types : int
    lower, upper : float
        Range of the normalised radial entry ``s`` to tabulate.
    step : float
        Interval width in ``s``.
    dtype : torch.dtype
        Precision of the tables (the model's).
    """

    def __init__(
        self,
        source: nn.Module,
        n_types: int,
        lower: float,
        upper: float,
        step: float,
        dtype: torch.dtype,
        far: float | None = None,
        far_step: float | None = None,
    ) -> None:
        super().__init__()
        if not upper > lower or step <= 0:
            raise ValueError(f"bad table range [{lower}, {upper}] or step {step}")
        self.n_types = int(n_types)
        self.type_one_side = bool(source.type_one_side)
        self.n_out = int(source.n_out)
        self.lower = float(lower)
        self.step = float(step)
        self.n_fine = int(math.ceil((upper - lower) / step))
        self.upper = self.lower + self.n_fine * self.step
        # A coarser second table covers unusually close pairs.
        far_step = 10 * step if far_step is None else float(far_step)
        far = self.upper + 10 * far_step if far is None else max(float(far), self.upper)
        self.far_step = float(far_step)
        self.n_coarse = max(1, int(math.ceil((far - self.upper) / self.far_step)))
        self.n_intervals = self.n_fine + self.n_coarse
        self.far = self.upper + self.n_coarse * self.far_step
        fine = self.lower + self.step * torch.arange(
            self.n_fine + 1, dtype=torch.float64
        )
        coarse = self.upper + self.far_step * torch.arange(
            self.n_coarse + 1, dtype=torch.float64
        )
        keys: List[Tuple[int, int]] = (
            [(0, t) for t in range(n_types)]
            if self.type_one_side
            else [(a, b) for a in range(n_types) for b in range(n_types)]
        )
        source64 = _float64_copy(source)
        tables = []
        for center, neighbor in keys:
            parts = []
            for grid, width in ((fine, self.step), (coarse, self.far_step)):
                centers = torch.full((grid.shape[0],), center, dtype=torch.long)

                def function(x, centers=centers, neighbor=neighbor):
                    out = source64(x.view(-1, 1, 1), centers, neighbor)
                    return out.view(-1, self.n_out)

                y, dy, d2y = _derivatives(function, grid)
                parts.append(_hermite_coefficients(y.detach(), dy.detach(),
                                                   d2y.detach(), width))
            tables.append(torch.cat(parts))
        coefficients = torch.stack(tables)  # [n_tables, n_intervals, 6, M]
        self.register_buffer(
            "coefficients", coefficients.reshape(-1, self.n_out).to(dtype)
        )
        with torch.no_grad():
            vectors = source.type_vectors(dtype, torch.device("cpu"))
        self.register_buffer("vectors", vectors.detach().clone())
        logger.info(
            "tabulated %d embedding net(s) on [%.4g, %.4g] with step %.3g and "
            "[%.4g, %.4g] with step %.3g", len(keys), self.lower, self.upper,
            self.step, self.upper, self.far, self.far_step,
        )

    def type_vectors(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The source's type vectors (empty without a type embedding)."""
        return self.vectors.to(dtype=dtype, device=device)

    def forward(
        self, s: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        """Filters of a block of neighbours of one type, from the tables.

        Parameters
        ----------
        s : (n_atoms, n, 1) float
        center_types : (n_atoms,) int64
        neighbor_type : int

        Returns
        -------
        (n_atoms, n, M) float
        """
        n_atoms, n = s.shape[0], s.shape[1]
        s = s.squeeze(-1)
        fine = (s - self.lower) / self.step  # [n_atoms, n]
        coarse = (s - self.upper) / self.far_step
        in_fine = fine.detach() < self.n_fine
        x = torch.where(in_fine, fine, coarse)
        beyond = (~in_fine).to(torch.long)  # 0 in the fine table, 1 beyond
        cell_index = x.detach().floor().clamp(min=0.0).to(torch.long)
        last = (self.n_fine - 1) * (1 - beyond) + (self.n_coarse - 1) * beyond
        if bool((cell_index > last).any()):
            warnings.warn(
                "a pair is closer than the compressed model's tables reach; its "
                "embedding is extrapolated (compress with a smaller min_distance)"
            )
        cell_index = torch.minimum(cell_index, last)
        u = x - cell_index.to(x.dtype)
        interval = cell_index + self.n_fine * beyond
        if self.type_one_side:
            table = torch.full_like(interval, neighbor_type)
        else:
            table = (center_types * self.n_types + neighbor_type).unsqueeze(1)
            table = table.expand(n_atoms, n)
        first_row = (table * self.n_intervals + interval) * 6
        rows = first_row.unsqueeze(-1) + torch.arange(6, device=s.device)
        u2 = u * u
        powers = torch.stack([torch.ones_like(u), u, u2, u2 * u, u2 * u2, u2 * u2 * u],
                             dim=-1)
        g = nn.functional.embedding_bag(
            rows.reshape(-1, 6), self.coefficients,
            per_sample_weights=powers.reshape(-1, 6), mode="sum",
        )
        return g.view(n_atoms, n, self.n_out)


    def contract(
        self, env: torch.Tensor, center_types: torch.Tensor, neighbor_type: int
    ) -> torch.Tensor:
        """``sum_slots env^T G`` for a block of one neighbour type (n_atoms, 4, M)."""
        filters = self.forward(env[:, :, 0:1], center_types, neighbor_type)
        return torch.bmm(env.transpose(1, 2), filters)


def _float64_copy(module: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(module)
    return clone.to(torch.float64)
