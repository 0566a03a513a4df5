"""The engine and ASE's own integrators driving our calculator agree.

NVE: the engine's velocity Verlet and ASE's ``VelocityVerlet`` follow the
same trajectory step by step. NVT: the engine's Langevin (BAOAB) and ASE's
``Langevin`` sample the same canonical distribution of an LJ fluid (mean
potential energy per atom and mean temperature within statistical error).
"""

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.md.langevin import Langevin as AseLangevin
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

from deepmd_like.calculator import DPLCalculator
from deepmd_like.md import Langevin, LennardJones, Simulation, VelocityVerlet

from md_calculator_helpers import small_model, water_cluster

EPSILON = 120.0 * units.kB  # argon, eV
SIGMA = 3.4


def lj_fluid(repeat: int, temperature_K: float, seed: int):
    """Argon at 1.374 g/cm³ (a liquid at 94 K) with Maxwell-Boltzmann momenta."""
    mass_g = 39.948 / 6.02214076e23
    a = (4 * mass_g / 1.374 * 1e24) ** (1 / 3)
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0, 0.15, atoms.positions.shape)
    sigma_p = np.sqrt(atoms.get_masses()[:, None] * units.kB * temperature_K)
    atoms.set_momenta(rng.normal(0, 1, (len(atoms), 3)) * sigma_p)
    return atoms


def lennard_jones(cutoff=2.5 * SIGMA):
    return LennardJones(EPSILON, SIGMA, cutoff, smoothing="force_shift")


@pytest.mark.parametrize("which", ["lj", "deeppot"])
def test_nve_engine_follows_ase_velocity_verlet_for_100_steps(which):
    if which == "lj":
        atoms = lj_fluid(3, 300.0, seed=1)  # 108 atoms, hot: atoms cross the box
        potential, dt = lennard_jones(), 5.0
    else:
        atoms = water_cluster()
        rng = np.random.default_rng(2)
        atoms.set_momenta(rng.normal(0, 0.3, (len(atoms), 3)))
        potential, dt = small_model(), 0.5
    ase_atoms = atoms.copy()
    ase_atoms.calc = DPLCalculator(potential)
    ase_dyn = AseVelocityVerlet(ase_atoms, timestep=dt * units.fs)
    sim = Simulation(atoms, potential, VelocityVerlet(dt), skin=0.5)
    start = atoms.positions.copy()
    for _ in range(100):
        sim.step()
        ase_dyn.run(1)
        ours = sim.state.positions.numpy()
        np.testing.assert_allclose(ours, ase_atoms.positions, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        sim.state.momenta.numpy(), ase_atoms.get_momenta(), rtol=0, atol=1e-8
    )
    assert np.abs(ase_atoms.positions - start).max() > 0.2  # it moved


def _block_mean(series: np.ndarray, n_blocks: int = 10) -> tuple[float, float]:
    """Mean and its standard error from block averages."""
    blocks = np.array_split(series, n_blocks)
    means = np.array([b.mean() for b in blocks])
    return float(series.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks))


@pytest.mark.slow
def test_engine_langevin_and_ase_langevin_sample_the_same_fluid():
    temperature_K, dt, friction = 94.4, 4.0, 0.02  # K, fs, 1/fs
    n_equil, n_steps, every = 300, 2000, 5
    atoms = lj_fluid(2, temperature_K, seed=3)  # 32 atoms
    n_atoms = len(atoms)

    # ASE's Langevin with our calculator.
    ase_atoms = atoms.copy()
    ase_atoms.calc = DPLCalculator(lennard_jones())
    dyn = AseLangevin(
        ase_atoms, dt * units.fs, temperature_K=temperature_K,
        friction=friction / units.fs,
        fixcm=False, rng=np.random.default_rng(4),
    )
    dyn.run(n_equil)
    ase_epot, ase_temp = [], []

    def sample():
        ase_epot.append(ase_atoms.get_potential_energy() / n_atoms)
        ase_temp.append(ase_atoms.get_temperature())

    dyn.attach(sample, interval=every)
    dyn.run(n_steps)

    # Our engine: four independent replicas in one batch.
    replicas = [lj_fluid(2, temperature_K, seed=10 + k) for k in range(4)]
    sim = Simulation(replicas, lennard_jones(), Langevin(dt, temperature_K, friction),
                     skin=1.0, seed=5)
    sim.run(n_equil)
    our_epot, our_temp = [], []
    for _ in range(n_steps // every):
        sim.run(every)
        obs = sim.observables()
        our_epot.append((obs["potential_energy"] / n_atoms).numpy())
        our_temp.append(obs["temperature"].numpy())
    our_epot = np.array(our_epot).T.reshape(-1)  # replica after replica
    our_temp = np.array(our_temp).T.reshape(-1)

    for ours, theirs, name in ((our_epot, np.array(ase_epot), "Epot/atom"),
                               (our_temp, np.array(ase_temp), "T")):
        mean_a, err_a = _block_mean(ours, 20)
        mean_b, err_b = _block_mean(theirs, 10)
        combined = np.hypot(err_a, err_b)
        assert abs(mean_a - mean_b) < 4 * combined, (name, mean_a, err_a, mean_b, err_b)
    # Both at the bath temperature.
    for series in (our_temp, np.array(ase_temp)):
        mean, err = _block_mean(series, 10)
        assert abs(mean - temperature_K) < 4 * err + 0.5
