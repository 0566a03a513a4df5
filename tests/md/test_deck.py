"""Decks and ``dpl md``: validation, bad input, outputs, exact restarts."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.io import write

from deepmd_like.cli import main
from deepmd_like.data import Dataset
from deepmd_like.errors import UserError
from deepmd_like.md.deck import deck_from_dict, load_deck
from deepmd_like.md.run import prepare
from deepmd_like.units import KB_EV_PER_K

LJ = {"lennard_jones": {"epsilon_K": 120.0, "sigma_A": 3.4, "cutoff_A": 7.0}}
LATTICE = {"lattice": {"kind": "fcc", "symbol": "Ar", "density_g_cm3": 1.374,
                       "repeat": [2, 2, 2]}}


def small_deck(**changes) -> dict:
    deck = {
        "structure": LATTICE,
        "potential": LJ,
        "timestep_fs": 5.0,
        "initial_temperature_K": 120.0,
        "seed": 11,
        "neighbor_skin_A": 0.5,
        "stages": [
            {"name": "nvt", "steps": 40, "thermostat": "langevin",
             "temperature_K": 94.4},
            {"name": "nve", "steps": 40},
        ],
        "reporters": {"thermo": {"interval": 5}, "trajectory": {"interval": 10},
                      "checkpoint": {"interval": 20}, "progress": False},
    }
    deck.update(changes)
    return deck


def write_deck(folder, data, name="deck.yaml"):
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


# -- bad decks: one clear line, exit 2, nothing written -----------------------


def _garbage_file(folder):
    (folder / "broken.xyz").write_text("this is\nnot a structure file\n")
    return {"file": "broken.xyz"}


def _overlapping_file(folder):
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [5, 5, 5], [5.1, 5, 5]],
                  cell=[12, 12, 12], pbc=True)
    write(folder / "overlap.extxyz", atoms)
    return {"file": "overlap.extxyz"}


BAD_DECKS = [
    ("unknown key", lambda f: {"stepz": 10},
     ["deck.yaml: unknown key 'stepz'", "did you mean 'steps'"]),
    ("nested unknown key", lambda f: {"reporters": {"thermo": {"intervall": 5}}},
     ["deck.yaml: unknown key 'reporters.thermo.intervall'",
      "did you mean 'interval'"]),
    ("unknown key in a stage",
     lambda f: {"stages": [{"steps": 10, "temprature_K": 300.0}]},
     ["deck.yaml: unknown key 'stages[0].temprature_K'"]),
    ("negative timestep", lambda f: {"timestep_fs": -1.0}, ["timestep_fs", "positive"]),
    ("temperature without thermostat",
     lambda f: {"stages": [{"steps": 10, "temperature_K": 300.0}]},
     ["temperature_K", "thermostat"]),
    ("thermostat typo",
     lambda f: {"stages": [{"steps": 10, "thermostat": "langevn",
                            "temperature_K": 300.0}]},
     ["langevn", "did you mean 'langevin'"]),
    ("wrong type", lambda f: {"seed": "abc"}, ["seed", "integer"]),
    ("model file missing", lambda f: {"potential": {"model": "missing.pt"}},
     ["missing.pt", "does not exist"]),
    ("model file not a model",
     lambda f: ((f / "junk.pt").write_bytes(b"not a model"),
                {"potential": {"model": "junk.pt"}})[1],
     ["junk.pt: not a deepmd-like checkpoint or frozen model ("]),
    ("structure file missing", lambda f: {"structure": {"file": "nothere.xyz"}},
     ["nothere.xyz", "does not exist"]),
    ("structure file ASE cannot read",
     lambda f: {"structure": _garbage_file(f)}, ["broken.xyz", "ASE cannot read"]),
    ("overlapping atoms", lambda f: {"structure": _overlapping_file(f)},
     ["atoms 1 and 2", "overlap", "0.100 Å"]),
    ("two potentials", lambda f: {"potential": {**LJ, "model": "m.pt"}},
     ["exactly one of model and lennard_jones"]),
    ("rdf of an open system",
     lambda f: {"structure": {"file": "open.xyz"},
                "analysis": {"rdf": {"pairs": [["Ar", "Ar"]]}},
                "_": write(f / "open.xyz", Atoms("Ar2", [[0, 0, 0], [4, 0, 0]]))},
     ["analysis.rdf", "periodic"]),
    ("rdf pair with an unknown element",
     lambda f: {"analysis": {"rdf": {"pairs": [["Ar", "Xx"]]}}},
     ["deck.yaml", "analysis.rdf.pairs[0]", "'Xx' is not an element symbol"]),
    ("rdf pair with an element not in the structure",
     lambda f: {"analysis": {"rdf": {"pairs": [["Ar", "Ar"], ["Ar", "Ne"]]}}},
     ["deck.yaml", "analysis.rdf.pairs[1]", "no Ne atoms"]),
]


@pytest.mark.parametrize(
    "name,change,expected", BAD_DECKS, ids=[c[0] for c in BAD_DECKS]
)
def test_bad_deck_fails_with_one_line_before_writing(
    tmp_path, capsys, name, change, expected
):
    data = small_deck(**change(tmp_path))
    data.pop("_", None)
    deck = write_deck(tmp_path, data)
    out = tmp_path / "out"
    assert main(["md", str(deck), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("dpl md: error: ")
    for piece in expected:
        assert piece in err, (piece, err)
    assert not out.exists()


def test_unparseable_yaml_and_missing_deck(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("structure: [unclosed\n")
    assert main(["md", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "cannot parse at line" in capsys.readouterr().err
    assert main(["md", str(tmp_path / "none.yaml"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    deck = write_deck(tmp_path, small_deck(stages=[{"steps": 5}]))
    out = tmp_path / "out"
    assert main(["md", str(deck), "-o", str(out)]) == 0
    before = (out / "thermo.csv").read_bytes()
    assert main(["md", str(deck), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "thermo.csv").read_bytes() == before
    assert main(["md", str(deck), "-o", str(out), "--overwrite"]) == 0


# -- the schema ------------------------------------------------------------


def test_lattice_density_and_shorthand():
    deck = deck_from_dict(small_deck(stages=[], steps=10, thermostat="bussi",
                                     temperature_K=50.0))
    assert [s.name for s in deck.stages] == ["run"]
    assert deck.stages[0].ensemble == "NVT"
    atoms = prepare(deck).atoms
    assert len(atoms) == 32
    density = atoms.get_masses().sum() / 6.02214076e23 / (atoms.get_volume() * 1e-24)
    assert density == pytest.approx(1.374, rel=1e-9)
    with pytest.raises(UserError, match="both at the top level"):
        deck_from_dict(small_deck(steps=10))


# -- a whole run: files, units, consistency --------------------------------


def test_run_writes_consistent_thermo_trajectory_and_analysis(tmp_path, capsys):
    data = small_deck(analysis={"rdf": {"pairs": [["Ar", "Ar"]], "bins": 50},
                                "msd": {}, "vacf": {}})
    deck = write_deck(tmp_path, data)
    out = tmp_path / "out"
    assert main(["md", str(deck), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ns/day" in printed and "rdf_Ar-Ar_first_peak_position_A" in printed

    rows = np.genfromtxt(out / "thermo.csv", delimiter=",", names=True)
    header = (out / "thermo.csv").read_text().splitlines()[0]
    assert header == "step,time_fs,Epot_eV,Ekin_eV,Etot_eV,Econserved_eV,T_K,P_GPa,V_A3"
    assert rows["step"].tolist() == list(range(0, 81, 5))
    np.testing.assert_allclose(rows["time_fs"], rows["step"] * 5.0)
    np.testing.assert_allclose(rows["Etot_eV"], rows["Epot_eV"] + rows["Ekin_eV"],
                               atol=1e-8)
    # 32 atoms, centre of mass fixed: 93 degrees of freedom.
    np.testing.assert_allclose(rows["T_K"], 2 * rows["Ekin_eV"] / (93 * KB_EV_PER_K),
                               rtol=1e-8)
    nve = rows["step"] >= 40
    assert np.ptp(rows["Etot_eV"][nve]) < 2e-3 * abs(rows["Etot_eV"][nve]).mean()

    # The trajectory is a dataset: one system per stage, frames unlabelled.
    ds = Dataset(out / "trajectory.h5")
    names = {s.name: s for s in ds.systems}
    assert set(names) == {"nvt", "nve"}
    assert names["nvt"].n_frames == 5 and names["nve"].n_frames == 4
    assert names["nvt"].n_atoms == 32
    with h5py.File(out / "trajectory.h5", "r") as h5:
        group = h5["systems/nve"]
        assert group["steps"][()].tolist() == [50, 60, 70, 80]
        assert not group["has_energy"][()].any()
        # Stored velocities are the momenta of the final state over masses.
        final = torch.load(out / "checkpoint.pt", weights_only=True)["simulation"]
        v = (final["momenta"] / final["masses"][:, None]).numpy() * 0.09822694788464063
        np.testing.assert_allclose(group["velocities"][-1], v, rtol=1e-12)
        np.testing.assert_array_equal(group["positions"][-1], final["positions"])
    analysis = yaml.safe_load((out / "analysis.json").read_text())
    assert analysis["summary"]["n_frames"] == 4
    for name in ("rdf.png", "msd.png", "vacf.png", "final.extxyz", "run.json"):
        assert (out / name).is_file()


def test_extxyz_trajectory(tmp_path):
    data = small_deck(stages=[{"steps": 20}])
    data["reporters"]["trajectory"] = {"interval": 10, "format": "extxyz"}
    deck = write_deck(tmp_path, data)
    assert main(["md", str(deck), "-o", str(tmp_path / "o")]) == 0
    from ase.io import read

    frames = read(tmp_path / "o" / "trajectory.extxyz", index=":")
    assert [a.info["step"] for a in frames] == [0, 10, 20]
    assert frames[0].arrays["velocities_A_per_fs"].shape == (32, 3)


# -- exact restart after SIGKILL ---------------------------------------------


RESTART_DECK = small_deck(
    stages=[
        {"name": "nvt", "steps": 1200, "thermostat": "langevin", "temperature_K": 94.4},
        {"name": "nve", "steps": 1200},
    ],
    reporters={"thermo": {"interval": 7}, "trajectory": {"interval": 25},
               "checkpoint": {"interval": 100}, "progress": False},
)


def _final_state(folder):
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)
    return saved["stage"], saved["simulation"]


def test_sigkill_then_restart_equals_uninterrupted_run(tmp_path):
    deck = write_deck(tmp_path, RESTART_DECK)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["md", str(deck), "-o", str(whole)]) == 0

    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "deepmd_like.cli", "md", str(deck), "-o", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    stage, state = _final_state(killed)
    assert stage < 2 and 0 < state["step"] < 2400, "the run was not killed mid-way"

    assert main(["md", str(deck), "-o", str(killed), "--restart"]) == 0
    _, reference = _final_state(whole)
    stage, state = _final_state(killed)
    assert stage == 2 and state["step"] == reference["step"] == 2400
    assert torch.equal(state["positions"], reference["positions"])
    assert torch.equal(state["momenta"], reference["momenta"])
    assert (killed / "thermo.csv").read_bytes() == (whole / "thermo.csv").read_bytes()
    with (
        h5py.File(whole / "trajectory.h5") as a,
        h5py.File(killed / "trajectory.h5") as b,
    ):
        assert set(a["systems"]) == set(b["systems"]) == {"nvt", "nve"}
        for name in a["systems"]:
            for key in a["systems"][name]:
                np.testing.assert_array_equal(
                    a["systems"][name][key][()], b["systems"][name][key][()]
                )
    # A finished run restarts as a no-op.
    assert main(["md", str(deck), "-o", str(killed), "--restart"]) == 0


def test_restart_refuses_a_changed_deck(tmp_path, capsys):
    deck = write_deck(tmp_path, small_deck())
    out = tmp_path / "out"
    assert main(["md", str(deck), "-o", str(out)]) == 0
    changed = write_deck(tmp_path, small_deck(seed=12), name="other.yaml")
    assert main(["md", str(changed), "-o", str(out), "--restart"]) == 2
    assert "differs from the deck" in capsys.readouterr().err


# -- the shipped decks -------------------------------------------------------


@pytest.mark.parametrize("name", ["deck.yaml", "short.yaml"])
def test_water_decks_run_with_a_stand_in_model(tmp_path, repo_root, name):
    """The water decks are valid and run; a small random model stands in for
    the shipped potential so the test does not depend on it."""
    from deepmd_like.nn.export import freeze
    from md_calculator_helpers import small_model

    source = repo_root / "md" / "water" / name
    data = yaml.safe_load(source.read_text())
    model = tmp_path / "model.pt"
    freeze(small_model(), model)
    data["potential"]["model"] = str(model)
    data["stages"][0]["steps"] = 20
    data["reporters"]["trajectory"]["interval"] = 5
    data["analysis"].pop("skip_fs", None)
    deck_path = tmp_path / name
    deck_path.write_text(yaml.safe_dump(data))
    deck = load_deck(deck_path)
    deck.base_dir = str(source.parent)  # the structure file lives beside the deck
    from deepmd_like.md.run import run_deck

    summary = run_deck(deck, tmp_path / "out", progress=False)
    assert summary.steps_run == 20
    position = summary.analysis["rdf_O-O_first_peak_position_A"]
    assert 2.0 < position < 3.5  # the starting frame is liquid water


def test_argon_deck_is_valid(repo_root):
    deck = load_deck(repo_root / "md" / "lj-argon" / "deck.yaml")
    assert [s.ensemble for s in deck.stages] == ["NVT", "NVT", "NVE"]
    atoms = prepare(deck).atoms
    assert len(atoms) == 864


def test_ensemble_deck_logs_model_deviation(tmp_path):
    from deepmd_like.nn.export import freeze
    from md_calculator_helpers import small_model

    for seed in (1, 2):
        freeze(small_model(seed), tmp_path / f"m{seed}.pt")
    data = {
        "structure": {"file": "w.extxyz", "min_distance_A": 0.7},
        "potential": {"model": ["m1.pt", "m2.pt"]},
        "timestep_fs": 0.5,
        "stages": [{"steps": 4, "thermostat": "bussi", "temperature_K": 300.0}],
        "reporters": {"thermo": {"interval": 2}, "trajectory": {"interval": 0},
                      "progress": False},
    }
    from md_calculator_helpers import water_cluster

    write(tmp_path / "w.extxyz", water_cluster())
    deck = write_deck(tmp_path, data)
    assert main(["md", str(deck), "-o", str(tmp_path / "out")]) == 0
    rows = np.genfromtxt(tmp_path / "out" / "thermo.csv", delimiter=",", names=True,
                         deletechars="")
    assert rows.dtype.names[-3:] == ("max_devi_f_eV/A", "min_devi_f_eV/A",
                                     "avg_devi_f_eV/A")
    assert np.all(rows["max_devi_f_eV/A"] >= rows["avg_devi_f_eV/A"])
    assert np.all(rows["avg_devi_f_eV/A"] >= rows["min_devi_f_eV/A"])
    assert rows["max_devi_f_eV/A"][0] > 0
    run = yaml.safe_load((tmp_path / "out" / "run.json").read_text())
    assert run["potential"].startswith("ensemble:")


def test_npt_stage_changes_the_volume(tmp_path):
    data = small_deck(stages=[{"name": "npt", "steps": 60, "thermostat": "bussi",
                               "temperature_K": 94.4, "barostat":
                               "stochastic_cell_rescaling", "pressure_GPa": 0.5,
                               "barostat_time_fs": 200.0}])
    deck = write_deck(tmp_path, data)
    assert main(["md", str(deck), "-o", str(tmp_path / "out")]) == 0
    rows = np.genfromtxt(tmp_path / "out" / "thermo.csv", delimiter=",", names=True)
    # Compressed at 0.5 GPa from a state near zero pressure: it shrinks.
    assert rows["V_A3"][-1] < rows["V_A3"][0]
    assert rows["P_GPa"][0] < 0.5
    with pytest.raises(UserError, match="bussi"):
        deck_from_dict(small_deck(stages=[{"steps": 5, "thermostat": "langevin",
                                           "temperature_K": 90.0,
                                           "barostat": "stochastic_cell_rescaling",
                                           "pressure_GPa": 0.1}]))
