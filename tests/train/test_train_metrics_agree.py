"""``dpl test`` and the training log report the same errors on the same frames."""

import json
import math

from deepmd_like.cli import main
from deepmd_like.train.lcurve import read_lcurve

from conftest import tiny_input


def test_dpl_test_matches_training_validation(water_set, tmp_path, capsys):
    data = tiny_input(
        str(water_set) + ":monomer",
        str(water_set) + ":dimer",
        numb_steps=6,
        disp_freq=6,
        save_freq=6,
    )
    # One validation batch holding all 12 dimer frames: the log's validation
    # errors are then over exactly the frames dpl test sees.
    data["training"]["validation_data"]["batch_size"] = 12
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    run = tmp_path / "run"
    assert main(["train", str(path), "-o", str(run), "--no-progress"]) == 0
    last = read_lcurve(run / "lcurve.csv")[-1]

    out = tmp_path / "metrics.json"
    plots = tmp_path / "plots"
    code = main(
        [
            "test",
            "-m",
            str(run / "checkpoint.pt"),
            "-s",
            str(water_set) + ":dimer",
            "--json",
            str(out),
            "--plots",
            str(plots),
            "--batch-size",
            "5",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "force RMSE" in text and "eV/Å" in text
    metrics = json.loads(out.read_text())["overall"]
    assert metrics["n_structures"] == 12
    assert math.isclose(
        metrics["energy_rmse_per_atom"],
        last["valid_energy_rmse_per_atom_eV"],
        rel_tol=1e-5,
    )
    assert math.isclose(
        metrics["force_rmse"], last["valid_force_rmse_eV_per_A"], rel_tol=1e-5
    )
    # Per-atom and total energy errors agree for a fixed atom count.
    assert math.isclose(
        metrics["energy_rmse"], 6 * metrics["energy_rmse_per_atom"], rel_tol=1e-12
    )
    assert metrics["virial_rmse"] is None  # no virial labels
    assert sorted(p.name for p in plots.iterdir()) == [
        "energy_parity.png",
        "force_parity.png",
    ]
    assert (plots / "force_parity.png").read_bytes()[:4] == b"\x89PNG"
    # Outputs are never overwritten silently.
    assert (
        main(
            [
                "test",
                "-m",
                str(run / "checkpoint.pt"),
                "-s",
                str(water_set),
                "--json",
                str(out),
            ]
        )
        == 2
    )


def test_existing_plots_are_refused_before_evaluating(
    water_set, tmp_path, capsys, monkeypatch
):
    from deepmd_like.train import evaluation

    data = tiny_input(str(water_set) + ":monomer", numb_steps=2, disp_freq=2,
                      save_freq=2)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    run = tmp_path / "run"
    assert main(["train", str(path), "-o", str(run), "--no-progress"]) == 0
    plots = tmp_path / "plots"
    args = ["test", "-m", str(run / "checkpoint.pt"), "-s",
            str(water_set) + ":dimer", "--plots", str(plots)]
    assert main(args) == 0
    capsys.readouterr()

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("evaluated before refusing the existing plots")

    monkeypatch.setattr(evaluation, "test_model", must_not_run)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "energy_parity.png" in err and "--overwrite" in err


def test_energy_parity_ticks_have_no_offset(tmp_path, monkeypatch):
    # Per-atom energies of real data sit near -155.9 eV/atom and spread by
    # meV; the ticks must show those numbers, not "+1.559e2" offsets.
    import matplotlib.figure
    import numpy as np

    from deepmd_like.train.evaluation import TestResult, parity_plots

    figures = []
    original = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    rng = np.random.default_rng(0)
    ref = -155.9 + 1e-3 * rng.standard_normal(20)
    result = TestResult(
        overall={"energy_rmse_per_atom": 1e-4, "force_rmse": 0.1},
        systems={},
        energy_per_atom=(ref, ref + 1e-4 * rng.standard_normal(20)),
        forces=(rng.standard_normal(30), rng.standard_normal(30)),
    )
    parity_plots(result, tmp_path)
    axes = figures[0].axes[0]
    figures[0].canvas.draw()
    assert axes.xaxis.get_major_formatter().get_offset() == ""
    assert axes.yaxis.get_major_formatter().get_offset() == ""
    assert "155.9" in axes.get_xticklabels()[1].get_text().replace("\u2212", "-")
