"""``dpl vmc``: outputs, checkpoints, restart, determinism, bad input."""

import csv
import json

import pytest
import torch
import yaml

from deepmd_like.cli import main
from deepmd_like.qmc import run as vmc_run
from deepmd_like.qmc.config import config_from_dict

TINY = {
    "system": {
        "unit": "bohr",
        "atoms": [["H", 0.0, 0.0, -0.7], ["H", 0.0, 0.0, 0.7]],
        "exact_energy": -1.174476,
    },
    "ansatz": {"n_determinants": 1, "hidden_one": 8, "hidden_two": 4, "n_layers": 1},
    "sampler": {"n_walkers": 16, "burn_in": 10, "decorrelation": 2},
    "pretrain": {"steps": 0},
    "optimizer": {"steps": 6},
    "evaluate": {"steps": 6, "decorrelation": 2},
    "checkpoint_every": 2,
    "seed": 7,
}


def _write(tmp_path, data, name="input.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_run_writes_every_output_and_evaluates_again(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    out = tmp_path / "run"
    assert main(["vmc", str(path), "-o", str(out), "--no-progress"]) == 0
    assert "E = " in capsys.readouterr().out
    names = ["checkpoint.pt", "train.csv", "evaluate.csv", "result.json", "trace.png"]
    for name in names:
        assert (out / name).is_file(), name
    rows = _rows(out / "train.csv")
    assert len(rows) == 6 and "energy_Ha" in rows[0] and "acceptance" in rows[0]
    result = json.loads((out / "result.json").read_text())
    assert result["error_Ha"] > 0 and result["reference_Ha"] == -1.174476
    # Refuses to overwrite, then evaluates again from the saved walkers.
    assert main(["vmc", str(path), "-o", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    again_args = ["vmc", str(path), "-o", str(out), "--evaluate-only", "--no-progress"]
    assert main(again_args) == 0
    again = json.loads((out / "result.json").read_text())
    assert again["train_steps"] == 6 and again["energy_Ha"] != result["energy_Ha"]


def test_same_seed_gives_identical_energies_step_by_step(tmp_path):
    config = config_from_dict(TINY)
    first = vmc_run.run_from_config(config, tmp_path / "a", progress=False)
    second = vmc_run.run_from_config(config, tmp_path / "b", progress=False)
    energies_a = [r["energy_Ha"] for r in _rows(tmp_path / "a" / "train.csv")]
    energies_b = [r["energy_Ha"] for r in _rows(tmp_path / "b" / "train.csv")]
    assert energies_a == energies_b
    assert first["energy_Ha"] == second["energy_Ha"]
    other = config_from_dict({**TINY, "seed": 8})
    third = vmc_run.run_from_config(other, tmp_path / "c", progress=False)
    assert third["energy_Ha"] != first["energy_Ha"]


def test_killed_run_restarts_to_the_same_numbers(tmp_path, monkeypatch):
    config = config_from_dict(TINY)
    straight = vmc_run.run_from_config(config, tmp_path / "straight", progress=False)

    original = vmc_run.Spring.step
    calls = {"n": 0}

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at step 4
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(vmc_run.Spring, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        vmc_run.run_from_config(config, tmp_path / "killed", progress=False)
    monkeypatch.setattr(vmc_run.Spring, "step", original)
    assert len(_rows(tmp_path / "killed" / "train.csv")) == 4
    resumed = vmc_run.run_from_config(
        config, tmp_path / "killed", restart=True, progress=False
    )
    assert _rows(tmp_path / "killed" / "train.csv")[-1]["energy_Ha"] == (
        _rows(tmp_path / "straight" / "train.csv")[-1]["energy_Ha"]
    )
    assert resumed["energy_Ha"] == straight["energy_Ha"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"system": {"atoms": [["H", 0, 0, 0]], "spin": 1}}, "no unit"),
        ({"system": {"unit": "bohr", "atoms": [["Q", 0, 0, 0]]}}, "unknown element"),
        ({"system": {**TINY["system"], "spin": 1}}, "spin"),
        ({"system": {**TINY["system"], "charge": 3}}, "electrons"),
        ({"sampler": {"n_walker": 4}}, "did you mean 'n_walkers'"),
        ({"optimizer": {"method": "sgd"}}, "optimizer.method"),
        (
            {
                "system": {
                    "unit": "bohr",
                    "atoms": [["U", 0, 0, 0], ["U", 0, 0, 5.0]],
                },
                "sampler": {"n_walkers": 4096},
                "max_memory_gb": 2.0,
            },
            "184 electrons",
        ),
        ({"system": {**TINY["system"], "charge": -5}}, "extra electrons"),
        ({"system": {**TINY["system"], "exact_energy": "low"}}, "exact_energy"),
        ({"optimizer": {"learning_rate": float("nan")}}, "finite"),
        ({"optimizer": {"learning_rate": -1.0}}, "optimizer.learning_rate"),
        ({"optimizer": {"learning_rate_decay": 0}}, "learning_rate_decay"),
        ({"sampler": {"initial_step": 0.0}}, "sampler.initial_step"),
        ({"sampler": {"target_acceptance": 2.0}}, "target_acceptance"),
        ({"sampler": {"n_walkers": 1}}, "n_walkers"),
        ({"ansatz": {"n_layers": 0}}, "ansatz.n_layers"),
        ({"evaluate": {"steps": 1}}, "evaluate.steps"),
        ({"threads": 0}, "threads"),
        ({"seed": 2**70}, "seed"),
        ({"max_memory_gb": -1}, "max_memory_gb"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, change, message):
    path = _write(tmp_path, {**TINY, **change})
    code = main(["vmc", str(path), "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err and str(path) in err
    assert not (tmp_path / "out").exists()


def test_restart_without_checkpoint_is_refused(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    code = main(["vmc", str(path), "-o", str(tmp_path / "none"), "--restart"])
    assert code == 2 and "checkpoint" in capsys.readouterr().err


def test_reference_energies_of_h2_in_a_minimal_basis(tmp_path, capsys):
    pytest.importorskip("pyscf")
    data = {**TINY, "reference": {"basis": "sto-3g", "fci": True}}
    path = _write(tmp_path, data)
    out = tmp_path / "ref"
    assert main(["vmc", str(path), "--reference", "-o", str(out)]) == 0
    energies = json.loads((out / "reference.json").read_text())
    # Published H2/STO-3G values at R = 1.4 bohr, to the four decimals given
    # in Szabo & Ostlund (sections 3.5.2 and 4.1).
    assert abs(energies["hf"] - (-1.1167)) < 1e-4
    # With two electrons, CCSD is exact: CCSD = CCSD(T) = FCI.
    assert abs(energies["fci"] - (-1.1373)) < 1e-4
    assert abs(energies["ccsd_t"] - energies["fci"]) < 1e-8
    assert "fci" in capsys.readouterr().out


def test_hartree_fock_orbitals_match_pyscf(tmp_path):
    pytest.importorskip("pyscf")
    import numpy as np

    from deepmd_like.qmc.hartree_fock import build_pyscf_molecule, run_hartree_fock
    from deepmd_like.qmc.hartree_fock import GaussianOrbitals, occupied_coefficients
    from deepmd_like.qmc.system import make_molecule

    molecule = make_molecule([["Li", 0, 0, 0], ["H", 0, 0, 3.015]], "bohr")
    mf = run_hartree_fock(molecule, "cc-pvdz")  # has d functions
    up, down = occupied_coefficients(mf)
    orbitals = GaussianOrbitals(mf.mol, up, down, molecule.n_up)
    points = np.random.default_rng(9).normal(size=(40, 3)) * 2.0
    mol = build_pyscf_molecule(molecule, "cc-pvdz")
    expected = mol.eval_gto("GTOval_cart", points) @ up
    got = orbitals.basis(torch.tensor(points)) @ orbitals.coeff_up
    assert np.allclose(got.numpy(), expected, atol=1e-12)


def test_restart_with_more_steps_trains_on(tmp_path):
    config = config_from_dict(TINY)
    vmc_run.run_from_config(config, tmp_path / "run", progress=False)
    longer = config_from_dict({**TINY, "optimizer": {"steps": 8}})
    result = vmc_run.run_from_config(
        longer, tmp_path / "run", restart=True, progress=False
    )
    rows = _rows(tmp_path / "run" / "train.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert result["train_steps"] == 8 and result["evaluate_steps"] == 6


def test_empty_or_binary_input_is_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    for path, message in [(empty, "empty"), (binary, "not a text")]:
        code = main(["vmc", str(path), "-o", str(tmp_path / "out"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in [afile, afile / "sub"]:
        code = main(["vmc", str(path), "-o", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "not a folder" in err


def test_continuing_with_another_molecule_or_network_is_refused(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    out = tmp_path / "run"
    assert main(["vmc", str(path), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    stretched = {**TINY["system"], "atoms": [["H", 0, 0, -1.0], ["H", 0, 0, 1.0]]}
    for change, key in [
        ({"system": stretched}, "system.atoms"),
        ({"sampler": {**TINY["sampler"], "n_walkers": 32}}, "sampler.n_walkers"),
        ({"ansatz": {**TINY["ansatz"], "hidden_one": 16}}, "ansatz"),
    ]:
        other = _write(tmp_path, {**TINY, **change}, "other.yaml")
        for flag in ["--restart", "--evaluate-only"]:
            code = main(["vmc", str(other), "-o", str(out), flag, "--no-progress"])
            err = capsys.readouterr().err
            assert code == 2 and key in err and len(err.strip().splitlines()) == 1


def test_overwrite_leaves_nothing_of_the_old_run(tmp_path):
    path = _write(tmp_path, TINY)
    out = tmp_path / "run"
    assert main(["vmc", str(path), "-o", str(out), "--no-progress"]) == 0
    assert (out / "evaluate.csv").exists()
    no_training = _write(tmp_path, {**TINY, "optimizer": {"steps": 0}}, "b.yaml")
    assert main(["vmc", str(no_training), "-o", str(out), "--overwrite",
                 "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["train_steps"] == 0
    assert len(_rows(out / "evaluate.csv")) == TINY["evaluate"]["steps"]
    assert _rows(out / "train.csv") == []


def test_switching_to_langevin_moves_for_evaluation_readapts_the_step(tmp_path):
    path = _write(tmp_path, {**TINY, "evaluate": {"steps": 6, "decorrelation": 5}})
    out = tmp_path / "run"
    assert main(["vmc", str(path), "-o", str(out), "--no-progress"]) == 0
    plain = _rows(out / "evaluate.csv")
    drift = {**TINY, "sampler": {**TINY["sampler"], "drift": True, "burn_in": 100},
             "evaluate": {"steps": 6, "decorrelation": 5}}
    other = _write(tmp_path, drift, "drift.yaml")
    assert main(["vmc", str(other), "-o", str(out), "--evaluate-only",
                 "--no-progress"]) == 0
    rows = _rows(out / "evaluate.csv")
    mean = sum(float(r["acceptance"]) for r in rows) / len(rows)
    assert 0.35 <= mean <= 0.75, mean
    assert rows != plain
