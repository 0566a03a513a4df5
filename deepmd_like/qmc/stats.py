"""Error bars for correlated Monte Carlo series: reblocking."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlockingResult:
    """Mean of a series and its standard error from reblocking.

    Attributes
    ----------
    mean : float
    error : float
        Standard error at the chosen blocking level.
    block_size : int
        Number of consecutive samples per block at that level.
    n_samples : int
    converged : bool
        Whether the chosen level met the plateau criterion; if not, the
        largest level with at least 8 blocks is used and the error is a
        lower bound.
    """

    mean: float
    error: float
    block_size: int
    n_samples: int
    converged: bool


def reblock(series: np.ndarray) -> BlockingResult:
    """Flyvbjerg–Petersen blocking analysis of a correlated series.

    Consecutive pairs are averaged repeatedly; at each level the naive
    standard error is computed. The level chosen is the smallest block size
    B with ``B^3 > 2 n (s_B / s_1)^4`` (n samples, s the naive error), the
    criterion of Lee, Kent, Needs and Drummond (2011): there the blocks are
    long compared with the correlation time.

    Parameters
    ----------
    series : (n_samples,) array
        For VMC, the walker-averaged local energy of each step.
    """
    data = np.asarray(series, dtype=np.float64).ravel()
    n = data.size
    if n < 2:
        raise ValueError(f"reblocking needs at least 2 samples, got {n}")
    mean = float(data.mean())
    levels = []
    block = data
    size = 1
    while block.size >= 2:
        error = float(block.std(ddof=1) / math.sqrt(block.size))
        levels.append((size, block.size, error))
        if block.size % 2:
            block = block[:-1]
        block = 0.5 * (block[0::2] + block[1::2])
        size *= 2
    base = levels[0][2]
    for size, n_blocks, error in levels:
        ratio = (error / base) ** 4 if base > 0 else 1.0
        if size**3 > 2 * n * ratio and n_blocks >= 8:
            return BlockingResult(mean, error, size, n, True)
    usable = [lv for lv in levels if lv[1] >= 8] or levels[:1]
    size, _, error = max(usable, key=lambda lv: lv[2])
    return BlockingResult(mean, error, size, n, False)
