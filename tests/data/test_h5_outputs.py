"""Publishing outputs: no replacing races, both split parts or neither,
references and options of the data commands."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest
from h5_test_helpers import write_deepmd_system

from deepmd_like.cli import main
from deepmd_like.data import Dataset, DatasetWriter, check_dataset, publish
from deepmd_like.data.converters import convert
from deepmd_like.data.publish import clean_stale_temporaries, publish_path
from deepmd_like.data.transform import split_dataset
from deepmd_like.errors import UserError


def _systems(path, sizes):
    rng = np.random.default_rng(0)
    with DatasetWriter(path) as writer:
        for k, n in enumerate(sizes):
            writer.add_system(
                f"s{k}", [8, 1], rng.uniform(0, 3, (n, 2, 3)) + [0, 0, 5],
                energy=rng.normal(-5, 0.1, n), forces=rng.normal(0, 1, (n, 2, 3)),
                attrs={"level_of_theory": "PBE"},
            )
    return path


def test_second_publisher_of_a_name_fails_and_keeps_the_first(tmp_path):
    target = tmp_path / "race.h5"
    with pytest.raises(UserError, match="already exists .another process"):
        with publish_path(target, suffix=".h5") as outer:
            outer.write_text("outer")
            with publish_path(target, suffix=".h5") as inner:
                inner.write_text("inner")
    assert target.read_text() == "inner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.h5"]


def test_split_by_frames_rounds_the_total(tmp_path):
    many = _systems(tmp_path / "many.h5", [3] * 10)
    _, _, counts = split_dataset(many, 0.1, tmp_path / "a")
    assert counts == {"train": 27, "valid": 3}
    two = _systems(tmp_path / "two.h5", [7, 3])
    train, valid, counts = split_dataset(two, 0.5, tmp_path / "b")
    assert counts == {"train": 5, "valid": 5}
    # Every frame is in exactly one part.
    energies = np.concatenate(
        [Dataset(p).read_system(n)["energy"] for p in (train, valid)
         for n in Dataset(p).system_names]
    )
    source = np.concatenate([Dataset(two).read_system(n)["energy"]
                             for n in ("s0", "s1")])
    np.testing.assert_array_equal(np.sort(energies), np.sort(source))


def test_split_by_systems_stays_near_the_fraction(tmp_path):
    sizes = [40, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]  # 100 frames
    path = _systems(tmp_path / "uneven.h5", sizes)
    for seed in range(8):
        _, _, counts = split_dataset(
            path, 0.2, tmp_path / f"s{seed}", by="systems", seed=seed
        )
        # Greedy "until at least 20%" put the 40-frame system in whenever it
        # came first; the closest choice never overshoots by a whole system.
        assert 15 <= counts["valid"] <= 25, (seed, counts)


def test_split_writes_both_parts_or_neither(tmp_path, monkeypatch):
    path = _systems(tmp_path / "d.h5", [6, 6])
    real = publish._publish

    def fail_for_train(tmp, target, overwrite):
        if target.name.endswith(".train.h5"):
            raise UserError(f"{target}: simulated failure")
        real(tmp, target, overwrite)

    monkeypatch.setattr(publish, "_publish", fail_for_train)
    with pytest.raises(UserError, match="simulated failure"):
        split_dataset(path, 0.5, tmp_path / "sp")
    assert sorted(p.name for p in tmp_path.iterdir() if "sp" in p.name) == []
    monkeypatch.setattr(publish, "_publish", real)
    train, valid, _ = split_dataset(path, 0.5, tmp_path / "sp")
    assert train.exists() and valid.exists()


def test_stale_temporaries_are_removed(tmp_path):
    target = tmp_path / "out.h5"
    dead = tmp_path / ".out.h5.999999999.abc123.h5"   # no such pid
    old = tmp_path / ".out.h5.q1w2e3r4.h5"            # older naming, 2 h old
    alive = tmp_path / f".out.h5.{os.getpid()}.zz9999.h5"
    other = tmp_path / ".other.h5.999999999.abc123.h5"
    for path in (dead, old, alive, other):
        path.write_bytes(b"x" * 100)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    removed = clean_stale_temporaries(target)
    assert sorted(removed) == sorted([dead, old])
    assert alive.exists() and other.exists()


def test_type_map_with_spaces(tmp_path):
    rng = np.random.default_rng(1)
    write_deepmd_system(
        tmp_path / "src" / "m", types=[0, 1, 1], type_map=["X", "Y"],
        coord=rng.uniform(0, 3, (2, 9)), energy=np.zeros(2),
    )
    out = tmp_path / "o.h5"
    code = main(["data", "convert", str(tmp_path / "src"), "-o", str(out),
                 "--type-map", "O, H"])
    assert code == 0
    assert Dataset(out).systems[0].atomic_numbers.tolist() == [8, 1, 1]


def test_data_references_in_check_and_convert(tmp_path):
    path = _systems(tmp_path / "d.h5", [4, 5])
    report = check_dataset(f"{path}:s1")
    assert report.ok and report.n_systems == 1 and report.n_frames == 5
    out = tmp_path / "one.h5"
    assert main(["data", "convert", f"{path}:s1", "-o", str(out)]) == 0
    copy = Dataset(out)
    assert copy.system_names == ["s1"]
    np.testing.assert_array_equal(copy.read_system("s1")["positions"],
                                  Dataset(path).read_system("s1")["positions"])


def test_check_of_a_file_without_systems_fails(tmp_path):
    DatasetWriter(tmp_path / "empty.h5").close()
    report = check_dataset(tmp_path / "empty.h5")
    assert not report.ok
    assert "no systems" in report.format()


def test_deepmd_export_is_readable_and_replaces_only_an_export(tmp_path):
    path = _systems(tmp_path / "d.h5", [3])
    out = tmp_path / "exported"
    assert main(["data", "export", str(path), "--format", "deepmd", "-o",
                 str(out)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    # An earlier export may be replaced; the current folder may not.
    assert main(["data", "export", str(path), "--format", "deepmd", "-o",
                 str(out), "--overwrite"]) == 0
    cwd = os.getcwd()
    os.chdir(out / "s0")
    try:
        assert main(["data", "export", str(path), "--format", "deepmd", "-o",
                     ".", "--overwrite"]) == 2
    finally:
        os.chdir(cwd)
    assert (out / "s0" / "type.raw").exists()
    assert not [p for p in tmp_path.iterdir()
                if p.name.startswith(".") and not p.name.endswith(".lock")]


def test_unlabelled_sources_need_the_flag_in_every_format(tmp_path):
    rng = np.random.default_rng(2)
    write_deepmd_system(
        tmp_path / "src" / "m", types=[0, 1], type_map=["O", "H"],
        coord=rng.uniform(0, 3, (2, 6)),
    )
    xyz = tmp_path / "m.xyz"
    xyz.write_text('2\nProperties=species:S:1:pos:R:3 pbc="F F F"\n'
                   "O 0 0 0\nH 0 0 0.97\n")
    for source in (tmp_path / "src", xyz):
        out = tmp_path / f"{source.stem}.h5"
        assert main(["data", "convert", str(source), "-o", str(out)]) == 2
        assert not out.exists()
        assert main(["data", "convert", str(source), "-o", str(out),
                     "--allow-unlabelled"]) == 0
        frames = Dataset(out)
        assert not any(bool(frame["has_energy"]) for frame in frames)


def test_extxyz_round_trip_keeps_provenance(tmp_path):
    path = _systems(tmp_path / "d.h5", [3])
    with DatasetWriter(path) as writer:
        writer.set_attrs("s0", {"source": 'vasp run "A" 2024'})
    xyz = tmp_path / "d.xyz"
    assert main(["data", "export", str(path), "--format", "extxyz", "-o",
                 str(xyz)]) == 0
    back = tmp_path / "back.h5"
    assert main(["data", "convert", str(xyz), "-o", str(back)]) == 0
    attrs = Dataset(back).systems[0].attrs
    assert attrs["level_of_theory"] == "PBE"
    assert attrs["source"] == "vasp run 'A' 2024"
    assert attrs["converted_from"] == str(xyz)


def test_info_labels_force_rms(tmp_path, capsys):
    path = tmp_path / "f.h5"
    forces = np.array([[[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])  # |F| 3 and 4
    with DatasetWriter(path) as writer:
        writer.add_system("m", [1, 1], np.array([[[0, 0, 0], [0, 0, 1.0]]]),
                          energy=[0.0], forces=forces)
    capsys.readouterr()
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    # RMS |F| = sqrt((9 + 16) / 2); per component sqrt(25 / 6).
    assert f"RMS |F| {np.sqrt(12.5):.4f}" in out
    assert f"RMS per component {np.sqrt(25 / 6):.4f}" in out


def test_free_energy_that_differs_is_reported(tmp_path, caplog):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, free_energy=-1.2,
                                       forces=np.zeros((2, 3)))
    src = tmp_path / "h2.xyz"
    write(src, atoms, format="extxyz")
    with caplog.at_level("WARNING"):
        convert([src], tmp_path / "h2.h5")
    assert "free_energy" in caplog.text
    assert Dataset(tmp_path / "h2.h5")[0]["energy"].item() == -1.0


def test_build_water_refuses_an_existing_output(tmp_path, repo_root):
    import subprocess
    import sys

    out = tmp_path / "w.h5"
    out.write_text("keep")
    run = subprocess.run(
        [sys.executable, str(repo_root / "datasets" / "build_water.py"), "-o",
         str(out)], capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].endswith(
        "w.h5 already exists; pass --overwrite to replace it")
    assert "Traceback" not in run.stderr and out.read_text() == "keep"
