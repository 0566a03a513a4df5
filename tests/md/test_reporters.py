"""Reporters: CSV columns and units, HDF5/extxyz frames, restarts, speed."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from deepmd_like.data import Dataset
from deepmd_like.errors import UserError
from deepmd_like.md import Langevin, LennardJones, Simulation, VelocityVerlet
from deepmd_like.md import reporters as rep
from deepmd_like.md.ensemble import EnsemblePotential
from deepmd_like.units import EV_PER_A3_TO_GPA


def argon_replicas(n=2):
    out = []
    for k in range(n):
        atoms = bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2)
        atoms.positions += np.random.default_rng(k).normal(0, 0.1, (32, 3))
        out.append(atoms)
    return out


def lj(epsilon=0.0104):
    return LennardJones(epsilon, 3.4, 6.5, smoothing="force_shift")


def test_thermo_columns_for_replicas_and_values(tmp_path):
    sim = Simulation(argon_replicas(2), lj(), Langevin(5.0, 100.0), seed=1)
    sim.initialize_velocities(100.0)
    thermo = rep.ThermoReporter(tmp_path / "t.csv", 5, n_structures=2, periodic=True)
    sim.run(10, [thermo])
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == (
        "step,replica,time_fs,Epot_eV,Ekin_eV,Etot_eV,Econserved_eV,T_K,P_GPa,V_A3"
    )
    rows = np.genfromtxt(tmp_path / "t.csv", delimiter=",", names=True)
    assert rows["step"].tolist() == [0, 0, 5, 5, 10, 10]
    assert rows["replica"].tolist() == [0, 1] * 3
    obs = sim.observables()
    last = rows[-2:]
    np.testing.assert_allclose(
        last["Epot_eV"], obs["potential_energy"].numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(
        last["P_GPa"], obs["pressure"].numpy() * EV_PER_A3_TO_GPA, rtol=1e-9
    )
    # Pressure from the virial theorem, checked here by hand for replica 0.
    volume = float(sim.state.volume()[0])
    virial = float(sim.state.virial[0].trace())
    kinetic = float(sim.state.kinetic_energy()[0])
    assert last["P_GPa"][0] == pytest.approx(
        (2 * kinetic + virial) / (3 * volume) * EV_PER_A3_TO_GPA, rel=1e-9
    )


def test_ensemble_deviation_columns_match_the_models_forces(tmp_path):
    models = [lj(0.0104), lj(0.0110)]
    ensemble = EnsemblePotential(models)
    atoms = argon_replicas(1)
    sim = Simulation(atoms, ensemble, VelocityVerlet(2.0))
    thermo = rep.ThermoReporter(
        tmp_path / "t.csv", 1, 1, periodic=True, ensemble=ensemble
    )
    sim.run(0, [thermo])
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["max_devi_f_eV/A", "min_devi_f_eV/A", "avg_devi_f_eV/A"]
    row = np.genfromtxt(tmp_path / "t.csv", delimiter=",", skip_header=1)
    # By hand: the two models' forces, their mean, the RMS distance per atom.
    from deepmd_like.calculator import DPLCalculator

    forces = []
    for model in models:
        single = atoms[0].copy()
        single.calc = DPLCalculator(model)
        forces.append(single.get_forces())
    forces = np.stack(forces)
    per_atom = np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))
    expected = [per_atom.max(), per_atom.min(), per_atom.mean()]
    np.testing.assert_allclose(row[-3:], expected,
                               rtol=1e-8)
    np.testing.assert_allclose(sim.state.forces.numpy(), forces.mean(0), atol=1e-12)


def _run_with_trajectory(tmp_path, fmt, steps, flush_every):
    sim = Simulation(argon_replicas(2), lj(), Langevin(5.0, 100.0), seed=3)
    sim.initialize_velocities(100.0)
    traj = rep.TrajectoryReporter(
        tmp_path / f"t.{fmt}", 2, fmt=fmt, level_of_theory="lj"
    )
    traj.set_stage("eq", 5.0)
    positions = []
    for start in range(0, steps, flush_every):
        sim.run(flush_every, [traj])
        positions.append(traj.position())
    traj.finish()
    return sim, traj, positions


def test_h5_trajectory_is_a_dataset_and_restores(tmp_path):
    sim, traj, positions = _run_with_trajectory(tmp_path, "h5", 12, 4)
    ds = Dataset(tmp_path / "t.h5")
    names = sorted(s.name for s in ds.systems)
    assert names == ["eq_r0", "eq_r1"]
    info = ds.systems[0]
    assert info.n_frames == 7 and info.n_atoms == 32
    assert info.attrs["md_potential"] == "lj"
    assert info.attrs["level_of_theory"] == "unknown"  # no labels stored
    assert positions[0] == {"frames": {"eq_r0": 3, "eq_r1": 3}}
    import h5py

    with h5py.File(tmp_path / "t.h5") as h5:
        group = h5["systems/eq_r1"]
        assert group["steps"][()].tolist() == [0, 2, 4, 6, 8, 10, 12]
        members = sim.state.structure_index.numpy() == 1
        np.testing.assert_array_equal(group["positions"][-1],
                                      sim.state.positions.numpy()[members])
    # Cut back to the first flush: every per-frame array shrinks together.
    again = rep.TrajectoryReporter(tmp_path / "t.h5", 2)
    again.restore(positions[0])
    again.finish()
    with h5py.File(tmp_path / "t.h5") as h5:
        for name in ("eq_r0", "eq_r1"):
            group = h5["systems"][name]
            for key in ("positions", "cell", "velocities", "steps", "energy"):
                assert group[key].shape[0] == 3, key
    # A system written after the recorded point disappears on restore.
    again = rep.TrajectoryReporter(tmp_path / "t.h5", 2)
    again.restore({"frames": {"eq_r0": 3}})
    again.finish()
    assert [s.name for s in Dataset(tmp_path / "t.h5").systems] == ["eq_r0"]
    with pytest.raises(UserError, match="holds 3 frames"):
        rep.TrajectoryReporter(tmp_path / "t.h5", 2).restore({"frames": {"eq_r0": 5}})


def test_extxyz_trajectory_restores_by_bytes(tmp_path):
    from ase.io import read

    _, _, positions = _run_with_trajectory(tmp_path, "extxyz", 8, 4)
    frames = read(tmp_path / "t.extxyz", index=":")
    assert len(frames) == 2 * 5
    assert [a.info["replica"] for a in frames[:4]] == [0, 1, 0, 1]
    again = rep.TrajectoryReporter(tmp_path / "t.extxyz", 2, fmt="extxyz")
    again.restore(positions[0])
    assert len(read(tmp_path / "t.extxyz", index=":")) == 2 * 3


def test_thermo_restore_cuts_rows(tmp_path):
    thermo = rep.ThermoReporter(tmp_path / "t.csv", 1, periodic=False)
    header = (tmp_path / "t.csv").read_text()
    assert "P_GPa" not in header
    mark = thermo.position()
    (tmp_path / "t.csv").open("a").write("1,2,3\n")
    thermo.restore(mark)
    assert (tmp_path / "t.csv").read_text() == header
    with pytest.raises(UserError, match="cannot continue exactly"):
        thermo.restore({"bytes": 10_000})


def test_progress_speed_in_ns_per_day(monkeypatch):
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr(rep.time, "perf_counter", lambda: next(clock))
    bar = rep.ProgressReporter(total_steps=2000, interval=100, enabled=False)
    temperature = torch.tensor([300.0])
    bar.report(None, {"step": 0, "time_fs": 0.0, "temperature": temperature})
    bar.report(None, {"step": 1000, "time_fs": 500.0, "temperature": temperature})
    # 500 fs in 10 s of wall time: 5e-4 ns * 8640 = 4.32 ns/day.
    assert bar.ns_per_day == pytest.approx(4.32)
    bar.finish()


def test_checkpoint_round_trip_and_refusals(tmp_path):
    path = tmp_path / "c.pt"
    rep.save_checkpoint(path, {"stage": 1, "simulation": {"x": torch.arange(3)}})
    data = rep.load_checkpoint(path)
    assert data["format"] == rep.CHECKPOINT_FORMAT and data["stage"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    torch.save({"format": rep.CHECKPOINT_FORMAT, "version": 99}, path)
    with pytest.raises(UserError, match="newer"):
        rep.load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable MD checkpoint"):
        rep.load_checkpoint(path)
    with pytest.raises(UserError, match="no checkpoint"):
        rep.load_checkpoint(tmp_path / "missing.pt")


def test_h5_trajectory_with_labels(tmp_path):
    sim = Simulation(argon_replicas(1)[0], lj(), VelocityVerlet(5.0))
    traj = rep.TrajectoryReporter(tmp_path / "t.h5", 5, forces=True,
                                  level_of_theory="lj")
    traj.set_stage("nve", 5.0)
    sim.run(5, [traj])
    traj.finish()
    ds = Dataset(tmp_path / "t.h5")
    assert ds.systems[0].attrs["level_of_theory"] == "lj"
    frame = ds[1]
    assert bool(frame["has_energy"]) and bool(frame["has_forces"])
    np.testing.assert_allclose(frame["forces"].numpy(), sim.state.forces.numpy())
    assert float(frame["energy"]) == pytest.approx(float(sim.state.energy[0]))
