"""Reblocking error bars against the exact error of correlated series."""

import numpy as np

from deepmd_like.qmc.stats import reblock


def _ar1(rho, n, seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1 - rho**2)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + noise[i]
    return x


def test_reblocking_recovers_the_error_of_an_ar1_series():
    rho, n = 0.9, 2**16
    series = _ar1(rho, n, seed=0)
    # Exact standard error of the mean of a stationary AR(1) process.
    variance = 1 / (1 - rho**2)
    exact = np.sqrt(variance / n * (1 + rho) / (1 - rho))
    result = reblock(series)
    assert result.converged
    assert abs(result.error / exact - 1) < 0.2
    naive = series.std(ddof=1) / np.sqrt(n)
    assert result.error > 3 * naive  # the naive error is far too small


def test_reblocking_of_uncorrelated_data_matches_the_naive_error():
    rng = np.random.default_rng(1)
    series = rng.normal(size=4096)
    result = reblock(series)
    naive = series.std(ddof=1) / np.sqrt(series.size)
    assert abs(result.error / naive - 1) < 0.25
    assert result.mean == series.mean()
