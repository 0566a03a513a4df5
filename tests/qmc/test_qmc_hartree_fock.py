"""Slater–Jastrow baseline from PySCF Hartree–Fock orbitals."""

import pytest
import torch

from deepmd_like.qmc.ansatz import SlaterJastrow
from deepmd_like.qmc.hamiltonian import local_energy
from deepmd_like.qmc.sampler import MetropolisSampler
from deepmd_like.qmc.system import make_molecule

pytest.importorskip("pyscf")
torch.set_default_dtype(torch.float64)


def _lithium_atom_slater_jastrow():
    from deepmd_like.qmc.hartree_fock import hartree_fock_orbitals

    molecule = make_molecule([["Li", 0, 0, 0]], "bohr", spin=1)
    orbitals, energy = hartree_fock_orbitals(molecule, "cc-pvdz")
    wavefunction = SlaterJastrow(
        orbitals, molecule.positions_tensor(), molecule.charges_tensor(), 2, 1
    )
    return wavefunction, energy


def test_slater_jastrow_is_antisymmetric_and_cusp_exact():
    wavefunction, _ = _lithium_atom_slater_jastrow()
    x = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(0))
    sign, logabs = wavefunction(x)
    swapped = x[:, [1, 0, 2]]
    sign_s, logabs_s = wavefunction(swapped)
    assert torch.equal(sign_s, -sign)
    assert torch.allclose(logabs_s, logabs, atol=1e-12)
    # Gaussian orbitals have no cusp; the Jastrow supplies it exactly.
    energies = []
    for d in [1e-4, 1e-6, 1e-8]:
        y = x[:1].clone()
        y[0, 2] = torch.tensor([d, 0.0, 0.0])
        energies.append(float(local_energy(wavefunction, y)[0]))
    assert abs(energies[-1] - energies[-2]) < 1e-2
    # Without the cusp term the local energy falls like -Z/r.
    with torch.no_grad():
        wavefunction.jastrow.raw_nucleus_range.fill_(-60.0)
    y[0, 2] = torch.tensor([1e-8, 0.0, 0.0])
    assert float(local_energy(wavefunction, y)[0]) < -1e8


def test_hartree_fock_determinant_recovers_the_hartree_fock_energy():
    # With the Jastrow switched off, VMC on the HF determinant must give the
    # HF energy of PySCF (up to the missing cusp, within the error bar).
    wavefunction, hf_energy = _lithium_atom_slater_jastrow()
    with torch.no_grad():
        wavefunction.jastrow.raw_nucleus_range.fill_(-60.0)
        wavefunction.jastrow.raw_electron_range.fill_(-60.0)
    generator = torch.Generator().manual_seed(1)
    sampler = MetropolisSampler(wavefunction, generator)
    state = sampler.init(torch.randn(512, 3, 3, generator=generator), 0.3)
    for _ in range(10):
        state, _ = sampler.step(state, 10)
    means = []
    for _ in range(12):
        state, _ = sampler.step(state, 5, adapt=False)
        means.append(local_energy(wavefunction, state.electrons).mean())
    energy = torch.stack(means).mean()
    error = torch.stack(means).std() / len(means) ** 0.5
    assert abs(float(energy) - hf_energy) < 4 * float(error) + 0.01
