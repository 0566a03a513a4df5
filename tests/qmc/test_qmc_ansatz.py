"""Antisymmetry, cusps and NaN-free evaluation of the FermiNet-style ansatz."""

import pytest
import torch

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions
from deepmd_like.qmc.determinants import safe_slogdet, signed_logsumexp
from deepmd_like.qmc.hamiltonian import local_energy
from deepmd_like.qmc.optimizer import (
    Spring,
    SpringOptions,
    per_walker_log_psi_gradients,
)

torch.set_default_dtype(torch.float64)


def _net(n_up=3, n_down=2, seed=0, nuclei=None, charges=None):
    torch.manual_seed(seed)
    if nuclei is None:
        nuclei = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])
        charges = torch.tensor([4.0, 1.0])
    options = FermiNetOptions(n_determinants=3, hidden_one=16, n_layers=2)
    net = FermiNet(nuclei, charges, n_up, n_down, options)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _swap(x, i, j):
    y = x.clone()
    y[:, [i, j]] = y[:, [j, i]]
    return y


@pytest.mark.parametrize("pair", [(0, 1), (0, 2), (3, 4)])
def test_exchange_of_same_spin_electrons_flips_sign(pair):
    net = _net()
    x = torch.randn(8, 5, 3, generator=torch.Generator().manual_seed(0))
    sign, logabs = net(x)
    swapped_sign, swapped_logabs = net(_swap(x, *pair))
    assert torch.equal(swapped_sign, -sign)
    assert torch.allclose(swapped_logabs, logabs, rtol=0, atol=1e-12)


def test_exchange_of_opposite_spin_electrons_is_not_a_symmetry():
    # Guards the test above: a swap that is not a symmetry changes psi.
    net = _net()
    x = torch.randn(8, 5, 3, generator=torch.Generator().manual_seed(0))
    _, logabs = net(x)
    _, swapped = net(_swap(x, 0, 3))
    assert (swapped - logabs).abs().max() > 1e-3


def _approach(net, electrons, mover, target, distances):
    energies = []
    for d in distances:
        x = electrons.clone()
        x[0, mover] = target + torch.tensor([d, 0.6 * d, -0.8 * d]) / 1.414
        energies.append(float(local_energy(net, x)[0]))
    return energies


def test_electron_nucleus_cusp_keeps_local_energy_finite():
    net = _net()
    x = torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(5))
    distances = [1e-2, 1e-4, 1e-6, 1e-8]
    energies = _approach(net, x, 1, net.nuclei[0], distances)
    assert all(abs(e) < 1e3 for e in energies)
    # The 1/r terms cancel exactly, so the limit exists.
    assert abs(energies[-1] - energies[-2]) < 1e-3
    # Without the cusp factor the same approach diverges like -Z/r.
    with torch.no_grad():
        net.jastrow.raw_nucleus_range.fill_(-60.0)
    bare = _approach(net, x, 1, net.nuclei[0], distances)
    assert bare[-1] < -1e7


@pytest.mark.parametrize(
    "other, distances",
    [
        (3, [1e-3, 1e-5, 1e-7]),  # opposite spin: psi stays finite at contact
        # Same spin: psi -> 0 at contact, and the orbital matrix becomes
        # ill-conditioned below ~1e-5 bohr, so stop at 1e-4.
        (2, [1e-2, 1e-3, 1e-4]),
    ],
)
def test_electron_electron_cusp_keeps_local_energy_finite(other, distances):
    net = _net()
    x = torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(6))
    energies = _approach(net, x, 0, x[0, other].clone(), distances)
    assert all(abs(e) < 1e2 for e in energies)
    assert abs(energies[-1] - energies[-2]) < 1e-2
    # Without the electron–electron cusp term the same approach diverges.
    with torch.no_grad():
        net.jastrow.raw_electron_range.fill_(-60.0)
    bare = _approach(net, x, 0, x[0, other].clone(), distances)
    assert bare[-1] > 0.5 / distances[-1]


def test_walker_on_a_nucleus_gives_no_nan():
    net = _net()
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(7))
    x[0, 0] = net.nuclei[0]
    x[1, 3] = net.nuclei[1]
    energies = local_energy(net, x)
    assert torch.isfinite(energies).all()
    gradients, _ = per_walker_log_psi_gradients(net, x)
    assert torch.isfinite(gradients).all()


def test_singular_determinant_gives_no_nan():
    matrix = torch.tensor([[1.0, 2.0], [2.0, 4.0]], requires_grad=True)
    sign, logabs = safe_slogdet(matrix)
    assert sign == 0 and logabs == float("-inf")
    # Summed with a regular determinant, it contributes exactly nothing.
    other = torch.tensor([[2.0, 0.0], [0.0, 3.0]], requires_grad=True)
    s_other, l_other = safe_slogdet(other)
    total_sign, total = signed_logsumexp(
        torch.stack([sign, s_other]), torch.stack([logabs, l_other])
    )
    assert total_sign == 1 and torch.allclose(total, torch.log(torch.tensor(6.0)))
    total.backward()
    assert torch.isfinite(matrix.grad).all() and torch.isfinite(other.grad).all()
    assert torch.allclose(other.grad, torch.linalg.inv(other).T)


def test_coincident_same_spin_electrons_give_a_node_without_nan():
    net = _net()
    x = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(8))
    x[2, 1] = x[2, 0]  # two up electrons on the same point: psi = 0 exactly
    sign, logabs = net(x)
    assert sign[2] == 0 and logabs[2] == float("-inf")
    assert torch.isfinite(logabs[[0, 1, 3, 4, 5]]).all()
    gradients, _ = per_walker_log_psi_gradients(net, x)
    assert torch.isfinite(gradients).all()
    # A natural-gradient step with that walker leaves the parameters finite.
    energies = torch.randn(6, generator=torch.Generator().manual_seed(9))
    Spring(net, SpringOptions()).step(x, energies)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_single_electron_species_are_supported():
    # One up electron and no down electron: the H atom.
    nuclei, charges = torch.zeros(1, 3), torch.tensor([1.0])
    net = _net(1, 0, nuclei=nuclei, charges=charges)
    x = torch.randn(5, 1, 3)
    sign, logabs = net(x)
    assert torch.isfinite(logabs).all() and (sign != 0).all()
    assert torch.isfinite(local_energy(net, x)).all()
