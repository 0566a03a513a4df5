"""``dpl data`` split, merge, export and info on real and small data."""

from __future__ import annotations

import numpy as np
import pytest

from deepmd_like.cli import main
from deepmd_like.data import Dataset, DatasetWriter


def _frames_of(path):
    """{(system, rounded first coordinate) ...} identifying every frame."""
    dataset = Dataset(path)
    out = []
    for info in dataset.systems:
        data = dataset.read_system(info.name)
        out += [(info.name, float(e)) for e in data["energy"]]
    return out


def test_split_by_frames_is_seeded_disjoint_complete(repo_root, tmp_path):
    water = repo_root / "datasets" / "water.h5"
    prefix = tmp_path / "w"
    assert main(["data", "split", str(water), "--validation", "0.25", "--seed", "5",
                 "-o", str(prefix)]) == 0
    train, valid = _frames_of(f"{prefix}.train.h5"), _frames_of(f"{prefix}.valid.h5")
    assert len(valid) == 100 and len(train) == 300  # 25 % of each system
    assert sorted(train + valid) == sorted(_frames_of(water))
    # Same seed, same split; another seed, another split.
    again = tmp_path / "again"
    main(["data", "split", str(water), "--validation", "0.25", "--seed", "5",
          "-o", str(again)])
    assert _frames_of(f"{again}.valid.h5") == valid
    other = tmp_path / "other"
    main(["data", "split", str(water), "--validation", "0.25", "--seed", "6",
          "-o", str(other)])
    assert _frames_of(f"{other}.valid.h5") != valid
    # Refuses to overwrite without the flag.
    assert main(["data", "split", str(water), "--validation", "0.25", "--seed", "5",
                 "-o", str(prefix)]) == 2
    assert main(["data", "split", str(water), "--validation", "0.25", "--seed", "7",
                 "-o", str(prefix), "--overwrite"]) == 0


def test_split_by_systems(repo_root, tmp_path):
    water = repo_root / "datasets" / "water.h5"
    prefix = tmp_path / "s"
    assert main(["data", "split", str(water), "--validation", "0.2", "--by", "systems",
                 "--seed", "0", "-o", str(prefix)]) == 0
    train = Dataset(f"{prefix}.train.h5").system_names
    valid = Dataset(f"{prefix}.valid.h5").system_names
    assert valid and train and not set(train) & set(valid)
    assert sorted(train + valid) == ["data_0", "data_1", "data_2", "data_3"]


def _small(path, theory, name="mol", energy=-1.0):
    with DatasetWriter(path) as writer:
        writer.add_system(name, [1, 1], np.array([[[0, 0, 0], [0, 0, 0.74]]]),
                          energy=[energy], attrs={"level_of_theory": theory})


def test_merge_refuses_mixed_theory(tmp_path, capsys):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "m.h5"
    _small(a, "PBE/def2-SVP", energy=-1.0)
    _small(b, "CCSD(T)/cc-pVTZ", energy=-2.0)
    assert main(["data", "merge", str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mix levels of theory" in err and "--allow-mixed-theory" in err
    assert not out.exists()
    assert main(["data", "merge", str(a), str(b), "-o", str(out),
                 "--allow-mixed-theory"]) == 0
    merged = Dataset(out)
    assert merged.system_names == ["mol", "b_mol"]  # clash renamed
    assert [s.attrs["level_of_theory"] for s in merged.systems] == [
        "PBE/def2-SVP", "CCSD(T)/cc-pVTZ"]
    assert _frames_of(out) == [("mol", -1.0), ("b_mol", -2.0)]


def test_merge_same_theory(tmp_path):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "m.h5"
    _small(a, "PBE", name="x", energy=-1.0)
    _small(b, "PBE", name="y", energy=-2.0)
    assert main(["data", "merge", str(a), str(b), "-o", str(out)]) == 0
    assert _frames_of(out) == [("x", -1.0), ("y", -2.0)]
    assert main(["data", "merge", str(a), str(b), "-o", str(out)]) == 2
    assert main(["data", "merge", str(b), "-o", str(out), "--overwrite"]) == 0
    assert _frames_of(out) == [("y", -2.0)]


def test_info_reports_ranges(repo_root, capsys):
    assert main(["data", "info", str(repo_root / "datasets" / "water.h5")]) == 0
    out = capsys.readouterr().out
    assert "systems: 4; frames: 400; elements: H O" in out
    assert "- data_1: H128O64, 192 atoms, 160 frames, periodic xyz" in out
    assert "energy [eV]: -29945.230469 .. -29941.625000" in out
    assert "units: energy eV, length Angstrom" in out


@pytest.mark.parametrize("fmt", ["extxyz", "deepmd"])
def test_export_refuses_overwrite(repo_root, tmp_path, fmt, capsys):
    out = tmp_path / "out"
    out.mkdir() if fmt == "deepmd" else out.write_text("keep")
    water = str(repo_root / "datasets" / "water.h5")
    assert main(["data", "export", water, "--format", fmt, "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "export", water, "--format", fmt, "-o", str(out),
                 "--overwrite"]) == 0
    assert out.exists()
