"""The engine's velocity Verlet against ASE's, both on ASE's own
Lennard-Jones calculator's physics (an independent implementation)."""

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

from deepmd_like.md import LennardJones, Simulation, VelocityVerlet

EPSILON, SIGMA, CUTOFF = 0.0104, 3.4, 8.5  # argon, eV and Å


def _liquid_argon(seed):
    # 108 atoms in a 15.8 Å box: smaller than twice the cutoff, so atoms see
    # several images of one another.
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(3)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    # Maxwell-Boltzmann momenta at 120 K.
    masses = atoms.get_masses()[:, None]
    atoms.set_momenta(rng.normal(0.0, 1.0, (len(atoms), 3))
                      * np.sqrt(masses * units.kB * 120.0))
    return atoms


def test_energy_and_forces_equal_ase_lennard_jones():
    atoms = _liquid_argon(0)
    atoms.positions += np.array([-20.0, 3.0, 40.0])  # unwrapped, negative
    reference = atoms.copy()
    reference.calc = AseLennardJones(epsilon=EPSILON, sigma=SIGMA, rc=CUTOFF)
    sim = Simulation(atoms, LennardJones(EPSILON, SIGMA, CUTOFF), VelocityVerlet(1.0))
    observables = sim.observables()
    assert abs(float(observables["potential_energy"][0])
               - reference.get_potential_energy()) < 1e-10
    np.testing.assert_allclose(
        sim.state.forces.numpy(), reference.get_forces(), atol=1e-11
    )
    # Pressure (kinetic plus virial) against ASE's stress.
    volume = atoms.get_volume()
    virial_pressure = -np.trace(reference.get_stress(voigt=False)) / 3.0
    kinetic_pressure = 2.0 * reference.get_kinetic_energy() / (3.0 * volume)
    assert abs(float(observables["pressure"][0]) - virial_pressure
               - kinetic_pressure) < 1e-10


def test_nve_trajectory_equals_ase_velocity_verlet_for_100_steps():
    atoms = _liquid_argon(1)
    reference = atoms.copy()
    reference.calc = AseLennardJones(epsilon=EPSILON, sigma=SIGMA, rc=CUTOFF)
    dt = 2.0  # fs

    sim = Simulation(
        atoms, LennardJones(EPSILON, SIGMA, CUTOFF), VelocityVerlet(dt), skin=0.3
    )
    dynamics = AseVelocityVerlet(reference, timestep=dt * units.fs)
    worst = 0.0
    for _ in range(100):
        sim.step()
        dynamics.run(1)
        ours = sim.state.positions.numpy()
        worst = max(worst, float(np.abs(ours - reference.positions).max()))
    assert worst < 1e-8
    np.testing.assert_allclose(
        sim.state.momenta.numpy(), reference.get_momenta(), atol=1e-8
    )
    # The skin was small enough that the list was rebuilt along the way.
    assert sim.neighbors.n_builds > 2


def test_batched_replicas_move_as_if_alone():
    first, second = _liquid_argon(2), _liquid_argon(3)
    second.set_cell(second.cell * 1.02, scale_atoms=True)
    potential = LennardJones(EPSILON, SIGMA, CUTOFF)
    together = Simulation([first, second], potential, VelocityVerlet(2.0))
    together.run(50)
    for index, atoms in enumerate([first, second]):
        alone = Simulation(atoms, LennardJones(EPSILON, SIGMA, CUTOFF),
                           VelocityVerlet(2.0))
        alone.run(50)
        np.testing.assert_allclose(
            together.to_atoms()[index].positions,
            alone.to_atoms().positions,
            atol=1e-10,
        )
    assert together.state.positions.dtype == torch.float64


def test_energy_error_of_velocity_verlet_scales_with_dt_squared():
    """Total-energy fluctuations of velocity Verlet shrink as dt^2, with a
    smooth (force-shifted) cutoff and the neighbour-list skin in play."""
    spreads = []
    for dt in (1.0, 2.0):
        atoms = _liquid_argon(4)
        sim = Simulation(atoms, LennardJones(EPSILON, SIGMA, CUTOFF,
                                             smoothing="force_shift"),
                         VelocityVerlet(dt), skin=0.5)

        class Log:
            interval = 1
            values = []

            def report(self, simulation, observables):
                self.values.append(float(observables["total_energy"][0]))

        log = Log()
        log.values = []
        sim.run(int(400 / dt), reporters=[log])
        spreads.append(np.std(log.values))
        assert sim.neighbors.n_builds > 1
    assert 3.0 < spreads[1] / spreads[0] < 5.0
    assert spreads[1] < 2e-4 * len(atoms) * EPSILON
