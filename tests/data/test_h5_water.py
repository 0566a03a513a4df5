"""The shipped water dataset matches its DeePMD source exactly."""

from pathlib import Path

import numpy as np
import pytest

from deepmd_like.data import Dataset


@pytest.fixture(scope="module")
def water(repo_root: Path) -> Dataset:
    return Dataset(repo_root / "datasets" / "water.h5")


def test_water_layout(water):
    assert water.system_names == ["data_0", "data_1", "data_2", "data_3"]
    assert [s.n_frames for s in water.systems] == [80, 160, 80, 80]
    assert len(water) == 400
    for info in water.systems:
        assert info.n_atoms == 192
        assert (info.atomic_numbers == 8).sum() == 64
        assert (info.atomic_numbers == 1).sum() == 128
        assert info.pbc.all() and info.has_cell
        assert "deepmd-kit" in info.attrs["source"]


def test_water_equals_source(water, shared_data):
    source = shared_data / "water_deepmd"
    for info in water.systems:
        folder = source / info.name
        sets = sorted(folder.glob("set.*"))
        coord = np.concatenate([np.load(s / "coord.npy") for s in sets])
        force = np.concatenate([np.load(s / "force.npy") for s in sets])
        energy = np.concatenate([np.load(s / "energy.npy") for s in sets])
        box = np.concatenate([np.load(s / "box.npy") for s in sets])
        types = np.loadtxt(folder / "type.raw", dtype=int)
        type_map = (folder / "type_map.raw").read_text().split()
        numbers = np.array([{"O": 8, "H": 1}[type_map[t]] for t in types])
        data = water.read_system(info.name)
        n = info.n_frames
        np.testing.assert_array_equal(data["atomic_numbers"], numbers)
        np.testing.assert_array_equal(data["positions"], coord.reshape(n, -1, 3))
        np.testing.assert_array_equal(data["forces"], force.reshape(n, -1, 3))
        np.testing.assert_array_equal(data["energy"], energy)
        np.testing.assert_array_equal(data["cell"], box.reshape(n, 3, 3))
        assert data["has_forces"].all() and not data["has_virial"].any()


def test_water_frame_tensors(water, shared_data):
    frame = water[80 + 160 + 3]  # data_2, frame 3
    assert int(frame["system_index"]) == 2 and int(frame["frame_index"]) == 3
    coord = np.load(shared_data / "water_deepmd/data_2/set.000/coord.npy")[3]
    np.testing.assert_array_equal(frame["positions"].numpy().ravel(), coord)
    assert frame["virial"].abs().sum() == 0 and not frame["has_virial"]
    assert frame["has_forces"] and frame["pbc"].all()
    assert list(water.system_frames("data_2")) == list(range(240, 320))
