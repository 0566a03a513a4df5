"""NPT with stochastic cell rescaling samples the isothermal-isobaric
ensemble.

Ideal gas: the volume density is exp(-P V / kT) V^N, so
<V> = (N + 1) kT / P and Var V = (N + 1) (kT / P)^2 exactly.
"""

import math

import numpy as np
import pytest
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


def _wca_fluid(n_replicas, volume_per_atom, seed):
    """108-atom Weeks-Chandler-Andersen fluids (repulsive Lennard-Jones)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_replicas):
        a = (4.0 * volume_per_atom) ** (1 / 3)
        atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(3)
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        out.append(atoms)
    return out


class PressureVolumeLog:
    def __init__(self, interval):
        self.interval = interval
        self.pressure, self.volume = [], []

    def report(self, simulation, observables):
        self.pressure.append(observables["pressure"].clone())
        self.volume.append(observables["volume"].clone())


@pytest.mark.slow
def test_npt_density_and_volume_fluctuations_match_nvt_equation_of_state():
    """NVT at three volumes gives P(V) near V0; NPT at P(V0) must give
    <V> = V0 and Var V = k_B T V0 kappa_T with kappa_T = -1/(V0 dP/dV)."""
    from deepmd_like.md import Bussi, LennardJones

    temperature, sigma = 120.0, 3.4
    kT = KB_EV_PER_K * temperature
    potential = LennardJones(kT, sigma, 2 ** (1 / 6) * sigma, smoothing="energy_shift")
    v0 = sigma**3 / 0.7  # Å^3 per atom, reduced density 0.7
    n_per_volume = 8
    factors = [0.97, 1.0, 1.03]
    nvt = Simulation(
        sum((_wca_fluid(n_per_volume, v0 * f, s) for s, f in enumerate(factors)), []),
        potential, Bussi(4.0, temperature, tau_fs=100.0), skin=1.0, seed=4,
    )
    nvt.initialize_velocities(temperature)
    nvt.run(300)
    log = PressureVolumeLog(interval=10)
    nvt.run(1500, reporters=[log])
    pressure = torch.stack(log.pressure).numpy().mean(0).reshape(3, n_per_volume)
    p_mean = pressure.mean(1)
    p_error = pressure.std(1, ddof=1) / math.sqrt(n_per_volume)
    volumes = 108 * v0 * np.array(factors)
    slope = (p_mean[2] - p_mean[0]) / (volumes[2] - volumes[0])
    slope_error = math.hypot(p_error[2], p_error[0]) / (volumes[2] - volumes[0])
    assert slope < -5 * slope_error  # a stiff, well-measured fluid
    kappa = -1.0 / (volumes[1] * slope)  # Å^3/eV

    n_npt = 24
    npt = Simulation(
        _wca_fluid(n_npt, v0, 10), potential,
        StochasticCellRescaling(
            4.0, temperature, pressure_GPa=p_mean[1] * EV_PER_A3_TO_GPA,
            tau_fs=100.0, tau_p_fs=400.0,
            compressibility_per_GPa=kappa / EV_PER_A3_TO_GPA,
        ),
        skin=1.0, seed=5,
    )
    npt.initialize_velocities(temperature)
    npt.run(300)
    log = PressureVolumeLog(interval=10)
    npt.run(2700, reporters=[log])
    volume = torch.stack(log.volume).numpy()  # [time, replica]
    per_replica = volume.mean(0)
    v_mean = per_replica.mean()
    v_error = per_replica.std(ddof=1) / math.sqrt(n_npt)
    # The NVT pressure at V0 is itself uncertain: propagate it through the slope.
    v_error = math.hypot(v_error, p_error[1] / abs(slope))
    assert abs(v_mean - volumes[1]) < 4 * v_error, (v_mean, volumes[1], v_error)

    variance = ((volume - v_mean) ** 2).mean(0)
    expected = kT * volumes[1] * kappa
    var_error = variance.std(ddof=1) / math.sqrt(n_npt)
    expected_error = expected * slope_error / abs(slope)
    tolerance = 4 * math.hypot(var_error, expected_error)
    assert abs(variance.mean() - expected) < tolerance, (
        variance.mean(), expected, var_error, expected_error)
