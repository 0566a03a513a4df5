"""The writer: appending, unlabelled frames, and what an append costs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from deepmd_like.data import Dataset, DatasetWriter
from deepmd_like.data import journal
from deepmd_like.errors import UserError


def test_unlabelled_md_frames(tmp_path):
    path = tmp_path / "md.h5"
    rng = np.random.default_rng(0)
    with DatasetWriter(path) as writer:
        writer.add_system("md", [8, 1, 1], rng.normal(size=(2, 3, 3)), energy=None)
        writer.append_frames("md", rng.normal(size=(3, 3, 3)),
                             energy=[-1.0, -2.0, -3.0],
                             forces=rng.normal(size=(3, 3, 3)))
    with h5py.File(path, "r") as h5:
        group = h5["systems/md"]
        assert group["has_energy"][()].tolist() == [False, False, True, True, True]
        assert group["has_forces"][()].tolist() == [False, False, True, True, True]
        assert np.isnan(group["energy"][:2]).all()
        assert np.isnan(group["forces"][:2]).all()
        assert "virial" not in group and "cell" not in group
    dataset = Dataset(path)
    frame = dataset[0]
    assert not frame["has_energy"] and float(frame["energy"]) == 0.0
    assert float(dataset[3]["energy"]) == -2.0 and dataset[3]["has_energy"]


def test_append_checks_and_mismatches(tmp_path):
    path = tmp_path / "a.h5"
    with DatasetWriter(path) as writer:
        writer.add_system("s", [1, 1], np.zeros((1, 2, 3)), energy=[0.0])
        with pytest.raises(UserError, match="already exists"):
            writer.add_system("s", [1, 1], np.zeros((1, 2, 3)), energy=[0.0])
        with pytest.raises(UserError, match=r"expected \(n_frames, 2, 3\)"):
            writer.append_frames("s", np.zeros((1, 3, 3)), energy=[0.0])
        with pytest.raises(UserError, match="frame 1: non-finite energy"):
            writer.append_frames("s", np.zeros((1, 2, 3)), energy=[np.nan])
        with pytest.raises(UserError, match="no system 'x'"):
            writer.append_frames("x", np.zeros((1, 2, 3)), energy=[0.0])
    # Failed calls left nothing behind.
    assert Dataset(path).systems[0].n_frames == 1


def test_reopen_appends(tmp_path):
    path = tmp_path / "a.h5"
    for step in range(3):
        with DatasetWriter(path) as writer:
            if step == 0:
                writer.add_system("s", [1], np.zeros((1, 1, 3)), energy=[0.0])
            else:
                writer.append_frames("s", np.full((1, 1, 3), step), energy=[step])
    assert Dataset(path).read_system("s")["energy"].tolist() == [0.0, 1.0, 2.0]
    with DatasetWriter(path, overwrite=True) as writer:
        assert not Dataset(path).systems


def test_append_to_large_file_writes_little(tmp_path, monkeypatch):
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(1)
    n_atoms = 64
    with DatasetWriter(path, journal=False) as writer:
        writer.add_system("md", np.full(n_atoms, 8),
                          rng.normal(size=(10_000, n_atoms, 3)),
                          energy=rng.normal(size=10_000),
                          forces=rng.normal(size=(10_000, n_atoms, 3)))
    size = path.stat().st_size
    inode = path.stat().st_ino
    written = []
    real_commit = journal.commit

    def spy(overlay, sync=True):
        written.append(len(overlay.pages) * journal.PAGE)
        real_commit(overlay, sync=sync)

    monkeypatch.setattr(journal, "commit", spy)
    with DatasetWriter(path) as writer:
        writer.append_frames("md", rng.normal(size=(1, n_atoms, 3)), energy=[0.5],
                             forces=rng.normal(size=(1, n_atoms, 3)))
    assert size > 20e6
    assert path.stat().st_ino == inode  # changed in place, not copied
    assert written[0] < 0.01 * size  # well under 1 % of the file
    data = Dataset(path).read_frames("md", 10_000)
    assert data["energy"].tolist() == [0.5]
