"""Pretraining pulls the network's orbitals onto Hartree–Fock orbitals."""

import pytest
import torch

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions
from deepmd_like.qmc.hamiltonian import local_energy
from deepmd_like.qmc.pretrain import pretrain_orbitals
from deepmd_like.qmc.sampler import MetropolisSampler
from deepmd_like.qmc.system import initial_walkers, make_molecule

pytest.importorskip("pyscf")
torch.set_default_dtype(torch.float64)


def _relative_row_error(orbitals, target):
    # orbitals (W, K, n, n), target (W, n, n): error of each electron's row.
    error = (orbitals - target[:, None]).norm(dim=-1)
    return (error / target[:, None].norm(dim=-1)).median()


def test_pretrained_lithium_reproduces_hartree_fock():
    from deepmd_like.qmc.hartree_fock import hartree_fock_orbitals

    molecule = make_molecule([["Li", 0, 0, 0]], "bohr", spin=1)
    hf, hf_energy = hartree_fock_orbitals(molecule, "cc-pvdz")
    torch.manual_seed(0)
    options = FermiNetOptions(n_determinants=1, hidden_one=16, hidden_two=4)
    nuclei, charges = molecule.positions_tensor(), molecule.charges_tensor()
    net = FermiNet(nuclei, charges, 2, 1, options)
    generator = torch.Generator().manual_seed(0)
    walkers = initial_walkers(molecule, 256, generator)
    state = pretrain_orbitals(net, hf, walkers, generator, steps=400)

    x = state.electrons
    with torch.no_grad():
        up, down = net.orbitals(x)
        factor = torch.exp(net.jastrow.one_body(x))[:, None, :, None]
        target_up, target_down = hf(x)
    # The orbitals times the electron–nucleus Jastrow factor are what the
    # wavefunction uses; they match Hartree–Fock, the bare orbitals do not.
    assert _relative_row_error(up * factor[:, :, :2], target_up) < 0.06
    assert _relative_row_error(down * factor[:, :, 2:], target_down) < 0.06
    assert _relative_row_error(up, target_up) > 0.5

    # Hence the pretrained network starts near the Hartree–Fock energy
    # (-7.4325 Ha in this basis; its own Jastrow is not optimised yet).
    sampler = MetropolisSampler(net, generator)
    state = sampler.init(x, 0.3)
    energies = []
    for _ in range(20):
        state, _ = sampler.step(state, 5)
        energies.append(local_energy(net, state.electrons).mean())
    energy = float(torch.stack(energies).mean())
    assert abs(energy - hf_energy) < 0.05, (energy, hf_energy)
