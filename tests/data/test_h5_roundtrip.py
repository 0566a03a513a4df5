"""Round trips: DeePMD npy -> HDF5 -> DeePMD npy, HDF5 -> extxyz -> HDF5."""

from __future__ import annotations

import numpy as np

from deepmd_like.cli import main
from deepmd_like.data import Dataset
from deepmd_like.data.converters import convert

from h5_test_helpers import random_system, write_deepmd_system  # noqa: F401


def _load_sets(folder, name):
    sets = sorted(folder.glob("set.*"))
    return np.concatenate([np.load(s / f"{name}.npy") for s in sets])


def test_deepmd_roundtrip_exact(tmp_path, shared_data, random_system):
    r = random_system
    mine = write_deepmd_system(
        tmp_path / "src" / "sys_a", r["types"], r["type_map"], r["coord"],
        r["energy"], r["force"], r["box"], r["virial"], sets=3,
    )
    sources = [
        shared_data / "water_deepmd" / "data_1",  # two sets, float32
        shared_data / "water_dplr_deepmd",  # with virial
        shared_data / "combustion_nopbc_deepmd" / "C4H3O1",  # no box
        mine,
    ]
    h5 = tmp_path / "all.h5"
    out = tmp_path / "out"
    assert main(["data", "convert", *map(str, sources), "-o", str(h5)]) == 0
    assert main(["data", "export", str(h5), "--format", "deepmd", "-o", str(out)]) == 0
    names = {"data_1": sources[0], "water_dplr_deepmd": sources[1],
             "C4H3O1": sources[2], "sys_a": sources[3]}
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name, source in names.items():
        exported = out / name
        for key in ("coord", "box", "energy", "force", "virial"):
            if not (source / "set.000" / f"{key}.npy").exists():
                assert not (exported / "set.000" / f"{key}.npy").exists()
                continue
            original = _load_sets(source, key)
            again = _load_sets(exported, key)
            assert again.dtype == np.float64
            # Every number exactly: float32 sources widen to float64 exactly.
            np.testing.assert_array_equal(again, original.astype(np.float64))
        assert (exported / "type.raw").read_text().split() == (
            (source / "type.raw").read_text().split()
        )
        assert (exported / "type_map.raw").read_text().split() == (
            (source / "type_map.raw").read_text().split()
        )
        assert (exported / "nopbc").exists() == (source / "nopbc").exists()


def test_extxyz_roundtrip_full_precision(tmp_path, random_system):
    r = random_system
    # Mixed labels: some frames without forces, energy or virial.
    write_deepmd_system(tmp_path / "src" / "mixed", r["types"], r["type_map"],
                        r["coord"], r["energy"], r["force"], r["box"], r["virial"])
    src = tmp_path / "src.h5"
    convert([tmp_path / "src"], src)
    # Knock labels out of some frames with the writer's masks.
    from deepmd_like.data import DatasetWriter

    data = Dataset(src).read_system("mixed")
    with DatasetWriter(src) as writer:
        has_forces = np.arange(4) % 2 == 0
        writer.append_frames(
            "mixed", data["positions"][:4] + 0.1, energy=data["energy"][:4] + 1,
            forces=data["forces"][:4], has_forces=has_forces,
            cell=data["cell"][:4], virial=None,
        )
    xyz = tmp_path / "out.xyz"
    back = tmp_path / "back.h5"
    assert main(["data", "export", str(src), "--format", "extxyz", "-o", str(xyz)]) == 0
    assert main(["data", "convert", str(xyz), "-o", str(back)]) == 0
    a = Dataset(src).read_system("mixed")
    b = Dataset(back).read_system("mixed")
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=0,
                                       equal_nan=True, err_msg=key)
        else:
            np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    assert a["has_forces"].sum() == 12 and a["has_virial"].sum() == 10
