"""Exact repeatability, exact restarts, ASE round trips, constraints."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.constraints import FixAtoms

from deepmd_like.md import (
    Bussi,
    Langevin,
    LennardJones,
    NoseHooverChain,
    Simulation,
    StochasticCellRescaling,
    VelocityVerlet,
)


def _argon():
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)  # 32 atoms
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    return atoms


INTEGRATORS = {
    "nve": lambda: VelocityVerlet(4.0),
    "langevin": lambda: Langevin(4.0, 100.0, friction_per_fs=0.02),
    "bussi": lambda: Bussi(4.0, 100.0, tau_fs=50.0),
    "nose_hoover": lambda: NoseHooverChain(4.0, 100.0, tau_fs=50.0),
    "npt": lambda: StochasticCellRescaling(
        4.0, 100.0, pressure_GPa=0.05, tau_p_fs=200.0, compressibility_per_GPa=0.5
    ),
}


def _simulation(kind, seed=3):
    sim = Simulation(
        [_argon(), _argon()],
        LennardJones(0.0104, 3.4, 6.0),
        INTEGRATORS[kind](),
        skin=0.5,
        seed=seed,
        remove_com_motion=True,
    )
    sim.initialize_velocities(100.0)
    return sim


@pytest.mark.parametrize("kind", list(INTEGRATORS))
def test_restart_from_state_dict_is_exact(kind, tmp_path):
    uninterrupted = _simulation(kind)
    uninterrupted.run(60)

    first = _simulation(kind)
    first.run(25)
    path = tmp_path / "state.pt"
    torch.save(first.state_dict(), path)
    del first

    resumed = _simulation(kind, seed=99)  # the seed comes from the file
    resumed.load_state_dict(torch.load(path, weights_only=True))
    resumed.run(35)
    assert resumed.state.step == 60
    assert torch.equal(resumed.state.positions, uninterrupted.state.positions)
    assert torch.equal(resumed.state.momenta, uninterrupted.state.momenta)
    assert torch.equal(resumed.state.cell, uninterrupted.state.cell)


@pytest.mark.parametrize("kind", ["langevin", "bussi", "npt"])
def test_same_seed_same_run_other_seed_other_run(kind):
    a, b, c = _simulation(kind, 7), _simulation(kind, 7), _simulation(kind, 8)
    for sim in (a, b, c):
        sim.run(20)
    assert torch.equal(a.state.positions, b.state.positions)
    assert not torch.allclose(a.state.positions, c.state.positions)


def test_newer_state_version_is_refused():
    sim = _simulation("nve")
    saved = sim.state_dict()
    saved["version"] = 99
    with pytest.raises(ValueError, match="newer"):
        sim.load_state_dict(saved)


def test_atoms_round_trip_and_frozen_atoms():
    atoms = _argon()
    atoms.set_constraint(FixAtoms(indices=[0, 5]))
    rng = np.random.default_rng(2)
    atoms.set_momenta(rng.normal(0, 0.5, (len(atoms), 3)), apply_constraint=False)
    sim = Simulation(atoms, LennardJones(0.0104, 3.4, 6.0),
                     Langevin(2.0, 100.0), remove_com_motion=True)
    # Frozen atoms have no degrees of freedom and already pin the centre.
    assert float(sim.dof[0]) == 3 * (len(atoms) - 2)
    start = sim.state.positions[[0, 5]].clone()
    sim.run(30)
    assert torch.equal(sim.state.positions[[0, 5]], start)
    out = sim.to_atoms()
    np.testing.assert_array_equal(out.positions, sim.state.positions.numpy())
    np.testing.assert_array_equal(out.get_momenta(), sim.state.momenta.numpy())
    np.testing.assert_array_equal(out.get_masses(), atoms.get_masses())
    assert list(out.constraints[0].get_indices()) == [0, 5]
    assert (out.cell[:] == atoms.cell[:]).all()


def test_centre_of_mass_motion_is_removed():
    sim = _simulation("langevin")
    assert float(sim.dof[0]) == 3 * 32 - 3
    sim.run(20)
    total = torch.zeros(2, 3, dtype=torch.float64).index_add_(
        0, sim.state.structure_index, sim.state.momenta
    )
    assert float(total.abs().max()) < 1e-12


def test_reporters_are_called_on_their_intervals():
    class Recorder:
        def __init__(self, interval):
            self.interval = interval
            self.steps = []
            self.closed = False

        def report(self, simulation, observables):
            self.steps.append(observables["step"])
            assert torch.isfinite(observables["pressure"]).all()

        def close(self):
            self.closed = True

    sim = _simulation("nve")
    every3, every5 = Recorder(3), Recorder(5)
    sim.run(10, reporters=[every3, every5])
    assert every3.steps == [0, 3, 6, 9] and every5.steps == [0, 5, 10]
    assert every3.closed and every5.closed
    sim.run(5, reporters=[every5])
    assert every5.steps[-1] == 15


def test_a_freshly_loaded_float32_model_gives_the_forces_of_a_warm_one(tmp_path):
    # A restarted run loads the frozen model afresh; its first force calls must
    # be bit-identical to those of a model that has already run many steps.
    from md_calculator_helpers import small_model, water_cluster

    from deepmd_like.md.forces import compute_forces
    from deepmd_like.nn.export import freeze, load_model

    path = freeze(small_model(), tmp_path / "model.pt")
    atoms = water_cluster()
    warm = load_model(path, dtype=torch.float32)
    sim = Simulation(atoms, warm, VelocityVerlet(0.5), skin=0.5, seed=1,
                     dtype=torch.float32)
    sim.initialize_velocities(300.0)
    sim.run(6)
    batch = sim.state.batch()
    pairs = sim.neighbors.update(sim.state.positions, sim.state.cell,
                                 sim.state.pbc, sim.state.structure_index)
    batch.update(centers=pairs.centers, neighbors=pairs.neighbors,
                 shifts=pairs.shifts)
    cold = load_model(path, dtype=torch.float32)
    for virial in (True, False):
        a = compute_forces(warm, dict(batch), virial=virial)
        b = compute_forces(cold, dict(batch), virial=virial)
        assert torch.equal(a["forces"], b["forces"])
        assert torch.equal(a["energy"], b["energy"])
