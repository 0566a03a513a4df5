"""Bad input: one clear line, exit 2, no traceback, no partial output."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from h5_test_helpers import write_deepmd_system

from deepmd_like.cli import main
from deepmd_like.data.converters import convert


def _deepmd(tmp, **changes):
    rng = np.random.default_rng(3)
    arrays = {
        "types": [0, 1, 1], "type_map": ["O", "H"],
        "coord": rng.uniform(0, 3, (4, 9)), "energy": rng.normal(-10, 1, 4),
        "force": rng.normal(0, 1, (4, 9)),
        "box": np.tile(np.eye(3).ravel() * 4, (4, 1)),
    }
    arrays.update(changes)
    return write_deepmd_system(tmp / "src" / "mol", **arrays)


def _good_h5(tmp):
    _deepmd(tmp)
    path = tmp / "good.h5"
    convert([tmp / "src"], path)
    return path


def _edit(path, action):
    with h5py.File(path, "r+") as h5:
        action(h5)
    return path


def case_missing_file(tmp):
    return ["data", "info", str(tmp / "nope.h5")], "nope.h5: no such file"


def case_not_hdf5(tmp):
    path = tmp / "text.h5"
    path.write_text("not hdf5\n")
    return ["data", "info", str(path)], "not an HDF5 file"


def case_no_format_attribute(tmp):
    path = tmp / "plain.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = [1.0]
    return ["data", "check", str(path)], "not a deepmd_like dataset"


def case_newer_version(tmp):
    path = _edit(_good_h5(tmp), lambda h5: h5.attrs.__setitem__("version", 2))
    return ["data", "info", str(path)], "format version 2 is newer"


def case_missing_energy(tmp):
    path = _edit(_good_h5(tmp), lambda h5: h5["systems/mol"].__delitem__("energy"))
    message = "system 'mol': required dataset 'energy' is missing"
    return ["data", "info", str(path)], message


def case_nan_forces_in_source(tmp):
    force = np.random.default_rng(0).normal(0, 1, (4, 9))
    force[2, 4] = np.nan  # atom 1
    _deepmd(tmp, force=force)
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "out.h5")],
            "system 'mol' frame 2: non-finite forces on atoms [1]")


def case_nan_forces_in_file(tmp):
    def poison(h5):
        forces = h5["systems/mol/forces"]
        value = forces[1]
        value[2, 0] = np.nan
        forces[1] = value

    path = _edit(_good_h5(tmp), poison)
    message = "system 'mol' frame 1: non-finite forces on atoms [2]"
    return ["data", "info", str(path)], message


def case_length_mismatch(tmp):
    _deepmd(tmp, types=[0, 1])  # 2 atoms in type.raw, 3 in coord.npy
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "out.h5")],
            "expected (n_frames, 6) for 2 atoms in type.raw")


def case_length_mismatch_in_file(tmp):
    def shorten(h5):
        del h5["systems/mol/atomic_numbers"]
        h5["systems/mol/atomic_numbers"] = np.array([8, 1])

    path = _edit(_good_h5(tmp), shorten)
    message = "positions have shape (4, 3, 3), expected (n_frames, 2, 3)"
    return ["data", "info", str(path)], message


def case_unknown_unit(tmp):
    _deepmd(tmp)
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "out.h5"),
             "--energy-unit", "furlong"], "unknown energy unit 'furlong'")


def case_extxyz_without_energy(tmp):
    path = tmp / "no_energy.xyz"
    path.write_text(
        "2\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nH 0 0 0\nH 0 0 0.74\n"
    )
    return (["data", "convert", str(path), "-o", str(tmp / "out.h5")],
            "no energy in any frame")


def case_overwrite_refused(tmp):
    _deepmd(tmp)
    out = tmp / "exists.h5"
    out.write_text("precious")
    return (["data", "convert", str(tmp / "src"), "-o", str(out)],
            "exists.h5 already exists; pass --overwrite")


_HELD = []  # writers kept open while a case runs


def _xyz(tmp, name="mol.xyz", forces="0 0 0"):
    path = tmp / name
    path.write_text(
        "2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 "
        'pbc="F F F"\n'
        f"H 0 0 0 {forces}\nH 0 0 0.74 0 0 0\n"
    )
    return path


def case_output_parent_is_a_file(tmp):
    _deepmd(tmp)
    (tmp / "afile").write_text("x")
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "afile/x.h5")],
            "afile: exists and is not a folder")


def case_convert_into_unwritable_folder(tmp):
    _deepmd(tmp)
    return (["data", "convert", str(tmp / "src"), "-o", "/proc/dpl_nope/x.h5"],
            "/proc/dpl_nope: cannot create the output folder")


def case_merge_into_unwritable_folder(tmp):
    good = _good_h5(tmp)
    return (["data", "merge", str(good), "-o", "/proc/x.h5"],
            "/proc: cannot write in the output folder")


def case_split_into_unwritable_folder(tmp):
    good = _good_h5(tmp)
    return (["data", "split", str(good), "--validation", "0.5", "-o", "/proc/sp"],
            "/proc: cannot write in the output folder")


def case_export_into_unwritable_folder(tmp):
    good = _good_h5(tmp)
    return (["data", "export", str(good), "--format", "extxyz", "-o",
             "/proc/dpl_nope/x.xyz"], "/proc/dpl_nope: cannot create")


def case_deepmd_export_into_unwritable_folder(tmp):
    good = _good_h5(tmp)
    return (["data", "export", str(good), "--format", "deepmd", "-o",
             "/proc/dpl_nope"], "/proc: cannot write in the output folder")


def case_nan_forces_names_the_source(tmp):
    path = _xyz(tmp, "nanforces.xyz", forces="nan 0 0")
    return (["data", "convert", str(path), "-o", str(tmp / "o3.h5")],
            f"{path}: system 'nanforces' frame 0: non-finite forces on atoms [0]")


def case_nan_forces_in_deepmd_names_the_folder(tmp):
    force = np.random.default_rng(0).normal(0, 1, (4, 9))
    force[0, 0] = np.nan
    _deepmd(tmp, force=force)
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "out.h5")],
            f"{tmp / 'src' / 'mol'}: system 'mol' frame 0: non-finite forces")


def case_overwrite_while_a_writer_holds_it(tmp):
    from deepmd_like.data import DatasetWriter

    _deepmd(tmp)
    target = tmp / "two.h5"
    _HELD.append(DatasetWriter(target))
    return (["data", "convert", str(tmp / "src"), "-o", str(target),
             "--overwrite"], "two.h5 is being written by another process")


def case_unknown_forces_key(tmp):
    path = _xyz(tmp)
    return (["data", "convert", str(path), "-o", str(tmp / "o.h5"),
             "--forces-key", "nosuch"], "--forces-key 'nosuch' matches nothing")


def case_unknown_stress_key(tmp):
    path = _xyz(tmp)
    return (["data", "convert", str(path), "-o", str(tmp / "o.h5"),
             "--stress-key", "nosuch"], "--stress-key 'nosuch' matches nothing")


def case_check_unknown_system(tmp):
    good = _good_h5(tmp)
    return (["data", "check", f"{good}:nosuch"], "no system named 'nosuch'")


def case_check_negative_min_distance(tmp):
    good = _good_h5(tmp)
    return (["data", "check", str(good), "--min-distance", "-1"],
            "--min-distance must be a distance >= 0")


def case_check_zero_outlier_sigma(tmp):
    good = _good_h5(tmp)
    return (["data", "check", str(good), "--outlier-sigma", "0"],
            "--outlier-sigma must be a positive number")


def case_check_negative_outlier_sigma(tmp):
    good = _good_h5(tmp)
    return (["data", "check", str(good), "--outlier-sigma", "-3"],
            "--outlier-sigma must be a positive number")


def case_deepmd_export_over_foreign_folder(tmp):
    good = _good_h5(tmp)
    victim = tmp / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    return (["data", "export", str(good), "--format", "deepmd", "-o", str(victim),
             "--overwrite"], "holds 'notes.txt', which is not a DeePMD system")


def case_extxyz_export_over_folder(tmp):
    good = _good_h5(tmp)
    (tmp / "adir").mkdir()
    return (["data", "export", str(good), "--format", "extxyz", "-o",
             str(tmp / "adir"), "--overwrite"], "adir: is a folder")


def case_convert_over_folder(tmp):
    _deepmd(tmp)
    (tmp / "adir").mkdir()
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "adir"),
             "--overwrite"], "adir: is a folder")


def case_split_empty_validation_part(tmp):
    from deepmd_like.data import DatasetWriter

    with DatasetWriter(tmp / "small.h5") as writer:
        for k in range(10):
            writer.add_system(f"s{k}", [1, 1], np.random.rand(3, 2, 3) + [0, 0, k],
                              energy=np.zeros(3))
    return (["data", "split", str(tmp / "small.h5"), "--validation", "0.01",
             "-o", str(tmp / "sp")], "leaves the validation part empty")


def _empty_dataset(tmp):
    from deepmd_like.data import DatasetWriter

    DatasetWriter(tmp / "empty.h5").close()
    return tmp / "empty.h5"


def case_deepmd_without_energy(tmp):
    _deepmd(tmp, energy=None)
    return (["data", "convert", str(tmp / "src"), "-o", str(tmp / "out.h5")],
            "no energy.npy/energy.raw in any set; pass --allow-unlabelled")


def case_split_no_systems(tmp):
    path = _empty_dataset(tmp)
    return (["data", "split", str(path), "--validation", "0.5", "-o",
             str(tmp / "sp")], "holds no frames")


CASES = [
    case_missing_file, case_not_hdf5, case_no_format_attribute, case_newer_version,
    case_missing_energy, case_nan_forces_in_source, case_nan_forces_in_file,
    case_length_mismatch, case_length_mismatch_in_file, case_unknown_unit,
    case_extxyz_without_energy, case_overwrite_refused,
    case_output_parent_is_a_file, case_convert_into_unwritable_folder,
    case_merge_into_unwritable_folder, case_split_into_unwritable_folder,
    case_export_into_unwritable_folder, case_deepmd_export_into_unwritable_folder,
    case_nan_forces_names_the_source, case_nan_forces_in_deepmd_names_the_folder,
    case_overwrite_while_a_writer_holds_it, case_unknown_forces_key,
    case_unknown_stress_key, case_check_unknown_system,
    case_check_negative_min_distance, case_check_zero_outlier_sigma,
    case_check_negative_outlier_sigma, case_deepmd_export_over_foreign_folder,
    case_extxyz_export_over_folder, case_convert_over_folder,
    case_split_empty_validation_part, case_split_no_systems,
    case_deepmd_without_energy,
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
def test_bad_input(tmp_path, capsys, case):
    argv, expected = case(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    capsys.readouterr()
    try:
        code = main(argv)
    finally:
        while _HELD:
            _HELD.pop().close()
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dpl data: error: ")
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
    # No output and no temporary left behind; existing files untouched.
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before
