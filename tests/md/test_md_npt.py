"""NPT with stochastic cell rescaling samples the isothermal-isobaric
ensemble.

Ideal gas: the volume density is exp(-P V / kT) V^N, so
<V> = (N + 1) kT / P and Var V = (N + 1) (kT / P)^2 exactly.
"""

import math

import numpy as np
import torch
from ase import Atoms

from deepmd_like.md import Simulation, StochasticCellRescaling
from deepmd_like.units import EV_PER_A3_TO_GPA, KB_EV_PER_K


class FreeGas(torch.nn.Module):
    """No interactions: zero energy, forces and virial."""

    cutoff = 0.01
    type_map = None

    def forward(self, batch):
        n = batch["cell"].shape[0]
        atom_energy = batch["positions"].sum(1) * 0.0
        return {"energy": torch.zeros(n, dtype=atom_energy.dtype),
                "atom_energy": atom_energy}

    def energy_and_forces(self, batch, virial=False):
        out = self.forward(batch)
        out["forces"] = torch.zeros_like(batch["positions"])
        if virial:
            out["virial"] = torch.zeros_like(batch["cell"])
        return out


class VolumeLog:
    def __init__(self, interval):
        self.interval = interval
        self.volumes = []

    def report(self, simulation, observables):
        self.volumes.append(observables["volume"].clone())


def test_ideal_gas_volume_distribution():
    n_atoms, n_replicas, temperature = 16, 192, 300.0
    kT = KB_EV_PER_K * temperature
    mean_volume = 1000.0  # Å^3
    pressure = (n_atoms + 1) * kT / mean_volume  # eV/Å^3
    rng = np.random.default_rng(0)
    structures = []
    for _ in range(n_replicas):
        box = mean_volume ** (1 / 3)
        structures.append(Atoms(
            "Ar" * n_atoms, positions=rng.uniform(0, box, (n_atoms, 3)),
            cell=[box] * 3, pbc=True,
            masses=[1000.0] * n_atoms,  # slow atoms: few list rebuilds
        ))
    barostat = StochasticCellRescaling(
        10.0, temperature, pressure_GPa=pressure * EV_PER_A3_TO_GPA,
        tau_fs=100.0, tau_p_fs=200.0,
        compressibility_per_GPa=1.0 / (pressure * EV_PER_A3_TO_GPA),  # the gas
    )
    sim = Simulation(structures, FreeGas(), barostat, skin=5.0, seed=1)
    sim.initialize_velocities(temperature)
    sim.run(200)
    log = VolumeLog(interval=20)
    sim.run(2000, reporters=[log])
    volumes = torch.stack(log.volumes).numpy() / (kT / pressure)  # [time, replica]

    first = volumes.mean(0)
    second = (volumes**2).mean(0)
    for values, expected in ((first, n_atoms + 1.0),
                             (second, (n_atoms + 1.0) * (n_atoms + 2.0))):
        error = values.std(ddof=1) / math.sqrt(n_replicas)
        assert abs(values.mean() - expected) < 4 * error, (values.mean(), expected)
        assert error < 0.02 * expected
    # Cells stay cubic and positions scale with them.
    cell = sim.state.cell
    assert torch.allclose(cell, torch.diag_embed(cell.diagonal(dim1=1, dim2=2)))
