"""Local energy and Laplacian: exact solutions and finite differences."""

import numpy as np
import pytest
import torch
from torch import nn

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions
from deepmd_like.qmc.geometry import safe_norm
from deepmd_like.qmc.hamiltonian import (
    laplacian_forward,
    laplacian_loop,
    local_energy,
    potential_energy,
)

torch.set_default_dtype(torch.float64)


class HydrogenLike(nn.Module):
    """The exact ground state exp(-Z r) of a one-electron ion."""

    def __init__(self, charge: float = 1.0):
        super().__init__()
        self.register_buffer("nuclei", torch.zeros(1, 3))
        self.register_buffer("charges", torch.tensor([charge]))
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, electrons):
        r = safe_norm(electrons[:, 0])
        return torch.ones_like(r), -self.charges[0] * self.scale * r


@pytest.mark.parametrize("method", ["loop", "forward"])
@pytest.mark.parametrize("charge", [1.0, 2.0])
def test_hydrogen_like_ion_has_zero_variance(method, charge):
    generator = torch.Generator().manual_seed(1)
    electrons = torch.randn(200, 1, 3, generator=generator) * 2.0
    energies = local_energy(HydrogenLike(charge), electrons, method)
    # E = -Z^2 / 2 at every point, not just on average.
    exact = torch.full_like(energies, -(charge**2) / 2)
    assert torch.allclose(energies, exact, rtol=0, atol=1e-8)


def _lithium_hydride_net(seed=0, n_determinants=2):
    torch.manual_seed(seed)
    nuclei = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 3.015]])
    options = FermiNetOptions(n_determinants=n_determinants, hidden_one=16, n_layers=2)
    net = FermiNet(nuclei, torch.tensor([3.0, 1.0]), 2, 2, options)
    with torch.no_grad():  # move away from the initial values, all of them
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _finite_difference_laplacian(net, electrons, h=1e-4):
    def log_psi(x):
        with torch.no_grad():
            return net(x)[1]

    flat = electrons.reshape(electrons.shape[0], -1)
    centre = log_psi(electrons)
    total = torch.zeros(electrons.shape[0])
    for index in range(flat.shape[1]):
        step = torch.zeros_like(flat)
        step[:, index] = h
        plus = log_psi((flat + step).reshape(electrons.shape))
        minus = log_psi((flat - step).reshape(electrons.shape))
        total += (plus - 2 * centre + minus) / h**2
    return total


@pytest.mark.parametrize("laplacian", [laplacian_loop, laplacian_forward])
def test_laplacian_matches_finite_differences(laplacian):
    net = _lithium_hydride_net()
    electrons = torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(3))
    _, exact = laplacian(net, electrons)
    numeric = _finite_difference_laplacian(net, electrons)
    assert torch.allclose(exact, numeric, rtol=1e-5, atol=1e-4)


def test_laplacian_methods_agree_on_gradient():
    net = _lithium_hydride_net()
    electrons = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(4))
    grad_loop, lap_loop = laplacian_loop(net, electrons)
    grad_fwd, lap_fwd = laplacian_forward(net, electrons)
    x = electrons.clone().requires_grad_(True)
    (reference,) = torch.autograd.grad(net(x)[1].sum(), x)
    assert torch.allclose(grad_loop, reference, atol=1e-12)
    assert torch.allclose(grad_fwd, reference, atol=1e-12)
    assert torch.allclose(lap_loop, lap_fwd, atol=1e-9)


def test_potential_energy_matches_brute_force():
    rng = np.random.default_rng(0)
    nuclei = rng.normal(size=(3, 3)) * 2
    charges = np.array([3.0, 1.0, 2.0])
    electrons = rng.normal(size=(4, 5, 3)) * 2
    expected = []
    for walker in electrons:
        v = 0.0
        for i in range(5):
            for j in range(i + 1, 5):
                v += 1 / np.linalg.norm(walker[i] - walker[j])
            for a in range(3):
                v -= charges[a] / np.linalg.norm(walker[i] - nuclei[a])
        for a in range(3):
            for b in range(a + 1, 3):
                v += charges[a] * charges[b] / np.linalg.norm(nuclei[a] - nuclei[b])
        expected.append(v)
    got = potential_energy(
        torch.tensor(electrons), torch.tensor(nuclei), torch.tensor(charges)
    )
    assert np.allclose(got.numpy(), expected, rtol=1e-13)
