"""Metropolis sampling reproduces |psi|^2 and adapts its acceptance."""

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats
from torch import nn

from deepmd_like.qmc.geometry import safe_norm
from deepmd_like.qmc.sampler import MetropolisSampler

torch.set_default_dtype(torch.float64)


class Hydrogen1s(nn.Module):
    def forward(self, electrons):
        r = safe_norm(electrons[:, 0])
        return torch.ones_like(r), -r


def _hydrogen_radial_cdf(r):
    # P(r) = 4 r^2 exp(-2r) for the 1s state, integrated from 0 to r.
    return 1.0 - np.exp(-2 * r) * (1 + 2 * r + 2 * r**2)


@pytest.mark.parametrize("drift", [False, True])
def test_sampler_reproduces_hydrogen_radial_distribution(drift):
    generator = torch.Generator().manual_seed(0)
    sampler = MetropolisSampler(Hydrogen1s(), generator, drift=drift)
    start = torch.randn(2000, 1, 3, generator=generator) * 0.1
    state = sampler.init(start, step_size=0.05)
    for _ in range(30):  # burn-in with adaptation
        state, _ = sampler.step(state, 10)
    state, acceptance = sampler.step(state, 50, adapt=False)
    assert 0.4 <= acceptance <= 0.7
    radii = safe_norm(state.electrons[:, 0]).numpy()
    # Walkers are independent chains: a one-sample test on their final points.
    result = scipy_stats.kstest(radii, _hydrogen_radial_cdf)
    assert result.pvalue > 0.01
    assert abs(radii.mean() - 1.5) < 0.06  # <r> = 3/2 bohr
    assert abs((radii**2).mean() - 3.0) < 0.25  # <r^2> = 3 bohr^2


@pytest.mark.parametrize("drift", [False, True])
def test_sampler_detects_a_wrong_distribution(drift):
    # Guards the test above: a 1s state of Z = 1.3 fails the same check.
    class Squeezed(nn.Module):
        def forward(self, electrons):
            r = safe_norm(electrons[:, 0])
            return torch.ones_like(r), -1.3 * r

    generator = torch.Generator().manual_seed(0)
    sampler = MetropolisSampler(Squeezed(), generator, drift=drift)
    state = sampler.init(torch.randn(2000, 1, 3, generator=generator), 0.5)
    for _ in range(30):
        state, _ = sampler.step(state, 10)
    radii = safe_norm(state.electrons[:, 0]).numpy()
    assert scipy_stats.kstest(radii, _hydrogen_radial_cdf).pvalue < 1e-6


@pytest.mark.parametrize("drift", [False, True])
def test_walker_on_a_node_moves_off_and_never_back(drift):
    class Node(nn.Module):  # psi = x: a node on the plane x = 0
        def forward(self, electrons):
            x = electrons[:, 0, 0]
            return torch.sign(x), torch.log(x.abs())

    generator = torch.Generator().manual_seed(1)
    sampler = MetropolisSampler(Node(), generator, drift=drift)
    start = torch.randn(50, 1, 3, generator=generator)
    start[:10, 0, 0] = 0.0
    state = sampler.init(start, 0.3)
    state, _ = sampler.step(state, 20)
    assert torch.isfinite(state.log_psi).all()
    assert (state.electrons[:, 0, 0] != 0).all()


def test_same_seed_same_walkers():
    def walk(seed):
        generator = torch.Generator().manual_seed(seed)
        sampler = MetropolisSampler(Hydrogen1s(), generator)
        state = sampler.init(torch.ones(10, 1, 3), 0.3)
        state, _ = sampler.step(state, 15)
        return state.electrons

    assert torch.equal(walk(3), walk(3))
    assert not torch.equal(walk(3), walk(4))


def test_drift_proposal_is_exact_for_a_two_electron_gaussian():
    # psi = exp(-|x|^2 / 2) for each of two electrons: every coordinate of
    # |psi|^2 is normal with variance 1/2. The drift changes the proposal,
    # not the stationary distribution, so the moments must come out exact.
    class Gaussian(nn.Module):
        def forward(self, electrons):
            log_psi = -0.5 * (electrons * electrons).sum((-1, -2))
            return torch.ones_like(log_psi), log_psi

    generator = torch.Generator().manual_seed(2)
    sampler = MetropolisSampler(Gaussian(), generator, drift=True)
    state = sampler.init(3.0 + torch.zeros(4000, 2, 3), 0.3)
    for _ in range(20):
        state, acceptance = sampler.step(state, 10)
    assert 0.4 <= acceptance <= 0.7
    x = state.electrons.reshape(-1).numpy()
    assert abs(x.mean()) < 0.03  # standard error 0.006
    assert abs(x.var() - 0.5) < 0.03  # standard error 0.004
    assert scipy_stats.kstest(x[::6], "norm", args=(0, 0.5**0.5)).pvalue > 0.01


def test_drift_without_metropolis_correction_would_be_biased():
    # Guards the test above: the drift alone (every move accepted) draws a
    # visibly wrong variance (about 1 / (2 - s^2) = 0.70) at the step size
    # the sampler adapts to there (0.76 bohr).
    generator = torch.Generator().manual_seed(2)
    x = 3.0 + torch.zeros(4000, 2, 3)
    step = 0.75
    for _ in range(200):
        gradient = -x
        drift = MetropolisSampler._drift(gradient, step)
        x = x + drift + step * torch.randn(x.shape, generator=generator)
    assert abs(float(x.var()) - 0.5) > 0.1
