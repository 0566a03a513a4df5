"""Analysis against known answers: ideal gas, crystals, random walks."""

import json
import math

import numpy as np
import pytest
from ase.build import bulk

from deepmd_like.errors import UserError
from deepmd_like.md import analysis


def _triclinic_cell():
    return np.array([[9.0, 0.0, 0.0], [2.5, 8.0, 0.0], [-1.5, 1.0, 10.0]])


def test_ideal_gas_rdf_is_one_beyond_half_the_box():
    # Uniform random points have g(r) = 1 at every r; r_max beyond half the
    # smallest plane spacing checks that far images are counted.
    rng = np.random.default_rng(0)
    cell = _triclinic_cell()
    n_frames, n_atoms = 40, 60
    frac = rng.random((n_frames, n_atoms, 3))
    positions = frac @ cell
    numbers = np.full(n_atoms, 18)
    rdf = analysis.radial_distribution(
        positions, cell, numbers, ("Ar", "Ar"), r_max=7.0, n_bins=14
    )
    assert rdf.r[-1] > 0.5 * 7.9  # beyond half the smallest spacing
    # Expected counts per bin give the Poisson error of each bin.
    volume = abs(np.linalg.det(cell))
    edges = np.linspace(0, 7.0, 15)
    shell = 4 / 3 * np.pi * np.diff(edges**3)
    expected = n_frames * n_atoms * (n_atoms - 1) / volume * shell
    sigma = 1 / np.sqrt(expected)
    assert np.all(np.abs(rdf.g - 1) < 5 * sigma)
    outer = rdf.r > 2.0
    pooled = np.average(rdf.g[outer], weights=expected[outer])
    assert abs(pooled - 1) < 4 / np.sqrt(expected[outer].sum())


def test_partial_rdf_of_two_species_ideal_gas():
    rng = np.random.default_rng(1)
    cell = np.diag([8.0, 9.0, 10.0])
    positions = rng.random((30, 50, 3)) @ cell
    numbers = np.array([8] * 20 + [1] * 30)
    rdf = analysis.radial_distribution(
        positions, cell, numbers, ("O", "H"), r_max=6.0, n_bins=6
    )
    expected = 30 * 20 * 30 / 720.0 * 4 / 3 * np.pi * np.diff(
        np.linspace(0, 6, 7) ** 3
    )
    assert np.all(np.abs(rdf.g - 1) < 5 / np.sqrt(expected))


def test_fcc_crystal_first_peak_and_coordination():
    a = 5.26
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(3)
    rng = np.random.default_rng(2)
    frames = atoms.positions + rng.normal(0, 0.05, (20, len(atoms), 3))
    rdf = analysis.radial_distribution(
        frames, atoms.cell.array, atoms.numbers, ("Ar", "Ar"), r_max=5.0, n_bins=250
    )
    position, height = rdf.first_peak()
    assert position == pytest.approx(a / np.sqrt(2), abs=0.02)
    assert height > 10
    # Integrating rho g(r) 4 pi r^2 over the first shell counts 12 neighbours.
    rho = len(atoms) / atoms.get_volume()
    dr = rdf.r[1] - rdf.r[0]
    shell = (rdf.r > 3.0) & (rdf.r < 4.5)
    n_first = np.sum(rho * rdf.g[shell] * 4 * np.pi * rdf.r[shell] ** 2) * dr
    assert n_first == pytest.approx(12, rel=0.01)


def test_first_peak_refines_a_sampled_gaussian():
    r = np.arange(0.0, 6.0, 0.1) + 0.05
    g = 1 + 2.0 * np.exp(-((r - 2.83) ** 2) / (2 * 0.3**2))
    position, height = analysis.first_peak(r, g)
    assert position == pytest.approx(2.83, abs=0.01)
    assert height == pytest.approx(3.0, abs=0.02)


def test_rdf_refuses_open_systems():
    with pytest.raises(UserError, match="periodic"):
        analysis.radial_distribution(
            np.zeros((1, 2, 3)), np.eye(3), [1, 1], ("H", "H"), 1.0, pbc=(1, 1, 0)
        )


def _brute_msd(x, max_lag):
    n = x.shape[0]
    return np.array(
        [
            np.mean(np.sum((x[k:] - x[: n - k]) ** 2, axis=-1))
            for k in range(max_lag + 1)
        ]
    )


def test_msd_of_ballistic_motion_is_v2_t2():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(10, 3))
    t = np.arange(50) * 2.0
    x = rng.normal(size=(10, 3)) + t[:, None, None] * v
    msd = analysis.mean_squared_displacement(x, 2.0, max_lag=49)
    expected = np.mean(np.sum(v**2, axis=1)) * msd.time_fs**2
    np.testing.assert_allclose(msd.msd_A2, expected, rtol=1e-9, atol=1e-9)


def test_msd_fft_equals_brute_force_and_random_walk_diffusion():
    rng = np.random.default_rng(4)
    sigma, dt = 0.1, 5.0  # Å per step per direction, fs per step
    steps = rng.normal(0, sigma, (2000, 200, 3))
    x = np.cumsum(steps, axis=0)
    msd = analysis.mean_squared_displacement(x, dt, max_lag=100)
    np.testing.assert_allclose(msd.msd_A2, _brute_msd(x, 100), rtol=1e-9)
    # MSD(t) = 3 sigma^2 t/dt = 6 D t, so D = sigma^2 / (2 dt).
    d_exact = sigma**2 / (2 * dt) * analysis.A2_PER_FS_TO_CM2_PER_S
    d = analysis.einstein_diffusion(msd)
    assert d == pytest.approx(d_exact, rel=0.03)


def test_unwrap_recovers_a_walk_folded_into_a_triclinic_box():
    rng = np.random.default_rng(5)
    cell = _triclinic_cell()
    x = 20 * rng.random((1, 30, 3)) + np.cumsum(rng.normal(0, 0.7, (100, 30, 3)), 0)
    frac = x @ np.linalg.inv(cell)
    wrapped = (frac - np.floor(frac)) @ cell
    cells = np.broadcast_to(cell, (100, 3, 3))
    unwrapped = analysis.unwrap_positions(wrapped, cells, (True, True, True))
    # Same trajectory up to one lattice translation per atom (set by frame 0).
    np.testing.assert_allclose(unwrapped - unwrapped[0], x - x[0], atol=1e-9)
    # Already unwrapped positions pass through unchanged.
    np.testing.assert_allclose(analysis.unwrap_positions(x, cells, (1, 1, 1)), x)


def test_vacf_of_ornstein_uhlenbeck_velocities():
    # dv = -gamma v dt + noise: C(t) = 3 s^2 exp(-gamma t), D = s^2 / gamma.
    rng = np.random.default_rng(6)
    dt, gamma, s = 1.0, 0.05, 0.01  # fs, 1/fs, Å/fs
    decay = math.exp(-gamma * dt)
    n_frames, n_atoms = 4000, 100
    v = np.empty((n_frames, n_atoms, 3))
    v[0] = rng.normal(0, s, (n_atoms, 3))
    kicks = rng.normal(0, s * math.sqrt(1 - decay**2), (n_frames, n_atoms, 3))
    for t in range(1, n_frames):
        v[t] = decay * v[t - 1] + kicks[t]
    vacf = analysis.velocity_autocorrelation(v, dt, max_lag=200)
    expected = 3 * s**2 * np.exp(-gamma * vacf.time_fs)
    assert np.max(np.abs(vacf.c - expected)) < 0.03 * 3 * s**2
    d = analysis.green_kubo_diffusion(vacf)
    # The trapezoid rule on exp(-gamma t) overestimates by ~(gamma dt)^2/12.
    assert d == pytest.approx(s**2 / gamma * 0.1, rel=0.05)
    # The same process integrated to positions: the MSD gives the same D.
    x = np.cumsum(v * dt, axis=0)
    msd = analysis.mean_squared_displacement(x, dt, max_lag=1000)
    d_msd = analysis.einstein_diffusion(msd, fit_start_fs=300)
    assert d_msd == pytest.approx(s**2 / gamma * 0.1, rel=0.1)


def test_analyse_and_write_results(tmp_path):
    rng = np.random.default_rng(7)
    cell = np.diag([10.0, 10.0, 10.0])
    n_frames, n_atoms = 60, 40
    v = rng.normal(0, 0.01, (n_frames, n_atoms, 3))
    x = rng.random((n_atoms, 3)) * 10 + np.cumsum(v * 10.0, axis=0)
    traj = analysis.Trajectory(
        positions=x,
        cells=np.broadcast_to(cell, (n_frames, 3, 3)),
        pbc=np.array([True] * 3),
        atomic_numbers=np.full(n_atoms, 18),
        frame_interval_fs=10.0,
        velocities=v,
    )
    options = analysis.AnalysisOptions(
        rdf_pairs=[("Ar", "Ar")], rdf_bins=20, msd=True, vacf=True, skip_fs=100
    )
    results = analysis.analyse(traj, options)
    assert results["n_frames"] == 50
    assert results["rdf"][0]["r_A"][-1] < 5.0  # default r_max: half the box
    paths = analysis.write_results(results, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["analysis.json", "msd.png", "rdf.png", "vacf.png"]
    document = json.loads((tmp_path / "analysis.json").read_text())
    assert "rdf_Ar-Ar_first_peak_position_A" in document["summary"]
    assert document["summary"]["diffusion_msd_cm2_per_s"] > 0
    assert (tmp_path / "rdf.png").read_bytes()[:4] == b"\x89PNG"
