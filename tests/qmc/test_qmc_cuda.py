"""The same wavefunction on CUDA and CPU gives the same numbers (float64)."""

import pytest
import torch

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions
from deepmd_like.qmc.hamiltonian import local_energy
from deepmd_like.qmc.optimizer import per_walker_log_psi_gradients
from deepmd_like.qmc.sampler import MetropolisSampler


@pytest.mark.cuda
def test_local_energy_and_gradients_agree_between_cpu_and_cuda():
    torch.manual_seed(0)
    nuclei = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 3.015]], dtype=torch.float64)
    charges = torch.tensor([3.0, 1.0], dtype=torch.float64)
    options = FermiNetOptions(n_determinants=2, hidden_one=16, n_layers=2)
    cpu = FermiNet(nuclei, charges, 2, 2, options)
    gpu = FermiNet(nuclei, charges, 2, 2, options)
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    x = torch.randn(32, 4, 3, dtype=torch.float64)
    e_cpu = local_energy(cpu, x)
    e_gpu = local_energy(gpu, x.cuda()).cpu()
    assert torch.allclose(e_cpu, e_gpu, rtol=1e-9, atol=1e-9)
    o_cpu, _ = per_walker_log_psi_gradients(cpu, x)
    o_gpu, _ = per_walker_log_psi_gradients(gpu, x.cuda())
    assert torch.allclose(o_cpu, o_gpu.cpu(), rtol=1e-9, atol=1e-9)
    generator = torch.Generator(device="cuda").manual_seed(0)
    sampler = MetropolisSampler(gpu, generator)
    state, acceptance = sampler.step(sampler.init(x.cuda()), 5)
    assert state.electrons.device.type == "cuda" and 0 < acceptance < 1
