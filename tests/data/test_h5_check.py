"""``dpl data check`` names system, frame and atoms of every problem."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from deepmd_like.cli import main
from deepmd_like.data import DatasetWriter


def _clean_system(rng, n_frames=40, box=6.0):
    # Atoms on a jittered grid: every pair at least ~1.2 Å apart.
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    base = grid[:8] * 2.0 + 0.5
    positions = base + rng.uniform(-0.2, 0.2, (n_frames, 8, 3))
    numbers = np.array([8, 1, 1, 8, 1, 1, 6, 6])
    # Energies consistent with per-element energies plus small noise.
    mu = {8: -430.0, 1: -13.6, 6: -150.0}
    energy = sum(mu[z] for z in numbers) + rng.normal(0, 0.05, n_frames)
    forces = rng.normal(0, 1, (n_frames, 8, 3))
    return numbers, positions, energy, forces, np.eye(3) * box


def _write(path, rng, **changes):
    numbers, positions, energy, forces, cell = _clean_system(rng)
    positions, energy, forces = positions.copy(), energy.copy(), forces.copy()
    with DatasetWriter(path, journal=False) as writer:
        writer.add_system("water", numbers, positions, energy, forces, cell=cell,
                          pbc=(True, True, True))
        writer.add_system("gas", numbers, positions[:10], energy[:10], forces[:10])
    return numbers, positions, energy, forces


def test_clean_file_passes(tmp_path, capsys):
    path = tmp_path / "ok.h5"
    _write(path, np.random.default_rng(0))
    assert main(["data", "check", str(path)]) == 0
    assert "OK: no problems found" in capsys.readouterr().out


def test_every_problem_is_named(tmp_path, capsys):
    path = tmp_path / "bad.h5"
    _write(path, np.random.default_rng(1))
    with h5py.File(path, "r+") as h5:
        water = h5["systems/water"]
        forces = water["forces"]
        value = forces[3]
        value[5, 1] = np.nan
        forces[3] = value
        positions = water["positions"]
        frame = positions[7]
        frame[2] = frame[4] + [0.03, 0.0, 0.04]  # atoms 2 and 4: 0.05 Å apart
        positions[7] = frame
        frame = positions[9]
        # Atoms 0 and 6 across the periodic boundary: 0.06 Å apart.
        frame[0] = [0.02, 3.0, 3.0]
        frame[6] = [5.96 + 0.0, 3.0, 3.0 + 0.0]
        positions[9] = frame
        energy = water["energy"]
        energy[12] = energy[12] + 50.0  # +6 eV per atom
        mask = np.ones(40, bool)
        mask[20:23] = False
        water.create_dataset("has_forces", data=mask)
        gas = h5["systems/gas"]
        del gas["energy"]
        gas.create_dataset("energy", data=np.zeros(9))  # 9 values for 10 frames
    code = main(["data", "check", str(path)])
    out = capsys.readouterr().out
    assert code == 2
    assert "non-finite: system water frame 3 atoms [5]: forces is not finite" in out
    assert "close-atoms: system water frame 7 atoms [2, 4]: 0.0500 Å apart" in out
    assert "close-atoms: system water frame 9 atoms [0, 6]: 0.0600 Å apart" in out
    assert "energy-outlier: system water frame 12:" in out
    assert (
        "missing-forces: system water: 3 of 40 frames have no forces "
        "(frames 20, 21, 22)"
    ) in out
    assert "shape: system gas: energy has shape (9,), expected (10,)" in out
    # Nothing else is reported: the remaining frames are fine.
    assert out.count("energy-outlier: system") == 1
    assert out.count("close-atoms: system") == 2


def test_min_distance_flag(tmp_path, capsys):
    path = tmp_path / "ok.h5"
    _write(path, np.random.default_rng(2))
    # Grid spacing 2 Å with ±0.2 Å jitter: every pair is 1.2-2.8 Å apart at the
    # nearest, so a 3 Å threshold flags pairs and 1 Å does not.
    assert main(["data", "check", str(path), "--min-distance", "1.0"]) == 0
    assert main(["data", "check", str(path), "--min-distance", "3.0"]) == 2
    assert "close-atoms" in capsys.readouterr().out


def test_outlier_among_many_small_compositions(tmp_path, capsys):
    """One frame per formula: outliers are judged against a per-element fit."""
    rng = np.random.default_rng(5)
    mu = {1: -13.6, 6: -1030.0, 8: -2040.0}
    path = tmp_path / "formulas.h5"
    with DatasetWriter(path, journal=False) as writer:
        for k in range(12):
            numbers = np.array([6] * (1 + k % 3) + [1] * (2 + k % 5) + [8] * (k % 2))
            n = len(numbers)
            # Atoms 1.5 Å apart on a line: nothing is too close.
            positions = np.zeros((1, n, 3))
            positions[0, :, 0] = 1.5 * np.arange(n)
            energy = sum(mu[z] for z in numbers) + rng.normal(0, 0.02)
            if k == 7:
                energy += 0.5 * n  # half an eV per atom too high
            writer.add_system(f"f{k}", numbers, positions, energy=[energy],
                              forces=np.zeros((1, n, 3)))
    assert main(["data", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count("energy-outlier: system") == 1
    assert "energy-outlier: system f7 frame 0:" in out


def test_real_reactive_data_passes(shared_data, tmp_path, capsys):
    from deepmd_like.data.converters import convert

    path = tmp_path / "combustion.h5"
    convert([shared_data / "combustion_nopbc_deepmd"], path)
    assert main(["data", "check", str(path)]) == 0
    assert "OK: no problems found" in capsys.readouterr().out


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False,) * 3])
def test_close_pairs_match_brute_force(pbc):
    """The k-d tree search finds the same pairs as an explicit image sum."""
    from deepmd_like.data.checks import _close_pairs, _close_pairs_dense

    rng = np.random.default_rng(11)
    cell = np.diag([4.0, 5.0, 6.0])
    positions = rng.uniform(-2, 8, (300, 3))
    limit = 0.35
    # Atoms lie up to two box lengths outside the box: images up to +-3.
    shifts = range(-3, 4)
    delta = positions[None, :, :] - positions[:, None, :]
    best = np.full((300, 300), np.inf)
    for a in shifts:
        for b in shifts:
            for c in shifts:
                shift = np.array([a, b, c])
                if any(s and not p for p, s in zip(pbc, shift)):
                    continue
                distance = np.linalg.norm(delta + shift @ cell, axis=-1)
                best = np.minimum(best, distance)
    i, j = np.nonzero(np.triu(best < limit, k=1))
    expected = {(int(a), int(b)): best[a, b] for a, b in zip(i, j)}
    assert expected  # the test means something
    for found in (_close_pairs(positions, cell, pbc, limit),
                  _close_pairs_dense(positions, cell, pbc, limit)):
        assert {(i, j) for i, j, _ in found} == set(expected)
        for i, j, d in found:
            assert d == pytest.approx(expected[(i, j)], abs=1e-9)
