"""Thermostats sample the canonical ensemble.

Many independent replicas advance in one batch; each replica's time average
is one independent sample, so standard errors come from the spread across
replicas. Exact references: the kinetic energy of f degrees of freedom is
Gamma(f/2, k_B T) distributed, so <T> = T0 and <T^2> = T0^2 (1 + 2/f); a
particle in a quartic well has the one-dimensional Boltzmann density
exp(-a x^4 / k_B T) / Z along each axis.
"""

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy import integrate, stats

from deepmd_like.md import Bussi, Langevin, NoseHooverChain, Simulation
from deepmd_like.units import FS, KB_EV_PER_K

T0 = 300.0


class PowerWell(torch.nn.Module):
    """External potential sum_a k_a |x_a|^n / n per atom (analytic forces)."""

    cutoff = 0.01
    type_map = None

    def __init__(self, stiffness, power):
        super().__init__()
        self.stiffness = torch.tensor(stiffness, dtype=torch.float64)
        self.power = power

    def _atom_energy(self, x):
        return (self.stiffness * x.abs() ** self.power).sum(1) / self.power

    def forward(self, batch):
        atom_energy = self._atom_energy(batch["positions"])
        n = batch["cell"].shape[0]
        energy = torch.zeros(n, dtype=atom_energy.dtype).index_add(
            0, batch["structure_index"], atom_energy
        )
        return {"energy": energy, "atom_energy": atom_energy}

    def energy_and_forces(self, batch, virial=False):
        x = batch["positions"]
        out = self.forward(batch)
        out["forces"] = -self.stiffness * x.abs() ** (self.power - 1) * x.sign()
        return out


class FreeParticles(PowerWell):
    def __init__(self):
        super().__init__([0.0, 0.0, 0.0], 2)


class TemperatureLog:
    def __init__(self, interval):
        self.interval = interval
        self.values = []
        self.positions = []

    def report(self, simulation, observables):
        self.values.append(observables["temperature"].clone())
        self.positions.append(simulation.state.positions.clone())


def _replicas(n_replicas, n_atoms, mass=1.0):
    atoms = Atoms(
        "H" * n_atoms,
        positions=np.arange(3 * n_atoms).reshape(n_atoms, 3) * 0.0,
        masses=[mass] * n_atoms,
    )
    return [atoms.copy() for _ in range(n_replicas)]


def _thermostat(kind, dt, tau_fs):
    if kind == "langevin":
        return Langevin(dt, T0, friction_per_fs=1.0 / tau_fs)
    if kind == "bussi":
        return Bussi(dt, T0, tau_fs=tau_fs)
    # One chain per degree of freedom: a single global chain is not ergodic
    # for free particles or harmonic oscillators.
    return NoseHooverChain(dt, T0, tau_fs=tau_fs, chain_length=4, massive=True)


def _check_moments(temps, dof):
    """Per-replica time averages of T and T^2 against Gamma moments."""
    temps = np.asarray(temps)  # [n_samples, n_replicas]
    n_replicas = temps.shape[1]
    first = temps.mean(0) / T0
    second = (temps**2).mean(0) / T0**2
    for values, expected in ((first, 1.0), (second, 1.0 + 2.0 / dof)):
        error = values.std(ddof=1) / math.sqrt(n_replicas)
        z = (values.mean() - expected) / error
        assert abs(z) < 4.0, (values.mean(), expected, error)
        # The errors must be small enough for the test to mean something.
        assert error < 0.03 * expected


@pytest.mark.parametrize("kind", ["langevin", "bussi", "nose_hoover"])
def test_ideal_gas_kinetic_energy_distribution(kind):
    n_atoms, n_replicas = 4, 96
    # Centre-of-mass motion removed (f = 3N - 3) except for the massive
    # chains, which act on every Cartesian degree of freedom.
    fixed_com = kind != "nose_hoover"
    sim = Simulation(
        _replicas(n_replicas, n_atoms),
        FreeParticles(),
        _thermostat(kind, 1.0, tau_fs=20.0),
        skin=1e3,
        seed=11,
        remove_com_motion=fixed_com,
    )
    dof = 3 * n_atoms - 3 * fixed_com
    assert torch.equal(sim.dof, torch.full((n_replicas,), float(dof)))
    # Start every replica at exactly T0: the spread must come from the bath.
    sim.initialize_velocities(T0, exact=True)
    sim.run(200)
    log = TemperatureLog(interval=20)
    sim.run(3000, reporters=[log])
    _check_moments(torch.stack(log.values).numpy(), dof)


@pytest.mark.parametrize("kind", ["langevin", "bussi", "nose_hoover"])
def test_harmonic_oscillator_kinetic_energy_distribution(kind):
    n_replicas, mass = 512, 1.0
    # Periods of 40, 26 and 20 fs along x, y, z (anisotropic, so the motion
    # is not confined to a plane).
    omega = 2.0 * math.pi / (np.array([40.0, 26.0, 20.0]) * FS)
    thermostat = _thermostat(kind, 0.25, tau_fs=20.0)
    sim = Simulation(
        _replicas(n_replicas, 1, mass),
        PowerWell(list(mass * omega**2), 2),
        thermostat,
        skin=1e3,
        seed=5,
    )
    sim.initialize_velocities(T0)
    n_steps = 4000
    if kind == "nose_hoover":
        # Nosé–Hoover chains are deterministic and not ergodic for harmonic
        # oscillators (Patra & Bhattacharya, J. Chem. Phys. 140, 064106,
        # 2014): start in the canonical distribution (positions and chain
        # velocities too) and check that the dynamics keeps it.
        kT = KB_EV_PER_K * T0
        generator = sim.state.generator
        spread = torch.tensor(np.sqrt(kT / (mass * omega**2)))
        sim.state.positions = spread * torch.randn(
            sim.state.positions.shape, generator=generator, dtype=torch.float64
        )
        thermostat.chain_velocity = torch.sqrt(kT / thermostat._q) * torch.randn(
            thermostat.chain_velocity.shape, generator=generator, dtype=torch.float64
        )
        sim.state.forces = None
        n_steps = 2000
    else:
        sim.run(400)
    log = TemperatureLog(interval=40)
    sim.run(n_steps, reporters=[log])
    _check_moments(torch.stack(log.values).numpy(), 3)


@pytest.mark.parametrize("kind", ["langevin", "bussi"])
def test_quartic_well_samples_boltzmann_density(kind):
    a = 0.1  # eV/Å^4
    kT = KB_EV_PER_K * T0
    n_replicas = 512
    sim = Simulation(
        _replicas(n_replicas, 1, mass=4.0),
        PowerWell([4 * a, 4 * a * 1.3, 4 * a * 0.8], 4),
        _thermostat(kind, 1.0, tau_fs=40.0),
        skin=1e3,
        seed=3,
    )
    sim.initialize_velocities(T0)
    sim.run(500)
    log = TemperatureLog(interval=50)
    sim.run(5000, reporters=[log])
    positions = torch.stack(log.positions).numpy()  # [n_samples, n_replicas, 3]

    edges = np.linspace(-1.3, 1.3, 27)
    total_chi2, total_dof = 0.0, 0
    for axis, scale in enumerate([1.0, 1.3, 0.8]):
        x = positions[:, :, axis].ravel()

        def density(u, scale=scale):
            return math.exp(-a * scale * u**4 / kT)

        norm = integrate.quad(density, -np.inf, np.inf)[0]
        expected = np.array(
            [integrate.quad(density, lo, hi)[0] / norm for lo, hi in
             zip(edges[:-1], edges[1:])]
        ) * len(x)
        observed, _ = np.histogram(x, edges)
        used = expected > 20
        total_chi2 += float(((observed - expected)[used] ** 2 / expected[used]).sum())
        total_dof += int(used.sum()) - 1
    p_value = stats.chi2.sf(total_chi2, total_dof)
    assert p_value > 1e-3, (total_chi2, total_dof)


def test_global_nose_hoover_chain_conserves_its_extended_energy():
    """The chain integrator solves the NHC equations: the extended energy
    E + sum Q v^2/2 + f kT eta_1 + kT sum_{k>1} eta_k stays constant."""
    omega = 2.0 * math.pi / (np.array([40.0, 26.0, 20.0]) * FS)
    chain = NoseHooverChain(0.25, T0, tau_fs=20.0, chain_length=4, yoshida_order=3)
    assert not chain.massive
    sim = Simulation(
        _replicas(8, 1), PowerWell(list(omega**2), 2), chain, skin=1e3, seed=5
    )
    sim.initialize_velocities(T0)
    kT = KB_EV_PER_K * T0

    def extended():
        total = sim.observables()["total_energy"]
        v, eta = chain.chain_velocity, chain.chain_position
        thermostat = (0.5 * chain._q * v * v).sum(1)
        return total + thermostat + chain.dof * kT * eta[:, 0] + kT * eta[:, 1:].sum(1)

    start = extended()
    sim.run(1000)
    drift = (extended() - start).abs().max() / kT
    assert drift < 1e-2
    # ... while the thermostat did work: heat flowed both ways.
    assert float(chain.heat.abs().max()) > 0.1 * kT


@pytest.mark.parametrize("kind", ["langevin", "bussi", "nose_hoover_global"])
def test_effective_energy_is_conserved_in_a_liquid(kind):
    """E_pot + E_kin + heat given to the bath stays constant while the
    total energy itself exchanges far more with the bath."""
    from ase.build import bulk

    from deepmd_like.md import LennardJones

    atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)
    atoms.positions += np.random.default_rng(1).normal(0, 0.1, atoms.positions.shape)
    integrator = {
        "langevin": Langevin(2.0, 120.0, friction_per_fs=0.02),
        "bussi": Bussi(2.0, 120.0, tau_fs=40.0),
        "nose_hoover_global": NoseHooverChain(2.0, 120.0, tau_fs=40.0),
    }[kind]
    sim = Simulation(atoms, LennardJones(0.0104, 3.4, 6.0, smoothing="force_shift"),
                     integrator, skin=0.5, seed=2, remove_com_motion=True)
    sim.initialize_velocities(40.0)  # far from 120 K: the bath must work

    class Log:
        interval = 5

        def __init__(self):
            self.total, self.conserved = [], []

        def report(self, simulation, observables):
            self.total.append(float(observables["total_energy"][0]))
            self.conserved.append(float(observables["conserved_energy"][0]))

    log = Log()
    sim.run(1000, reporters=[log])
    assert np.ptp(log.total) > 0.1  # eV: heat flowed in
    assert np.ptp(log.conserved) < 0.02 * np.ptp(log.total)
