"""Training runs on small EMT-labelled water data: shifts, sel, fine-tuning, outputs."""

import json

import numpy as np
import pytest
import torch

from deepmd_like.cli import main
from deepmd_like.config import config_from_dict
from deepmd_like.errors import UserError
from deepmd_like.train.checkpoint import load_checkpoint
from deepmd_like.train.lcurve import COLUMNS, read_lcurve
from deepmd_like.train.trainer import Trainer

from conftest import tiny_input


def test_mixed_sizes_loss_decreases_from_the_first_steps(water_set, tmp_path):
    # Monomers (3 atoms) and dimers (6 atoms) whose totals carry offsets of
    # hundreds of eV per atom: per-element shifts must absorb those at step 0.
    data = tiny_input(str(water_set), numb_steps=40, disp_freq=40, save_freq=40)
    data["training"]["training_data"]["batch_size"] = "auto"
    trainer = Trainer(config_from_dict(data), tmp_path / "run", progress=False)
    assert [s.batch_size for s in trainer.train_systems] == [11, 6]
    shift = trainer.model_config  # resolved config is plain data
    assert json.loads(json.dumps(shift)) == shift
    result = trainer.run()
    losses = np.array(trainer.losses)
    assert len(losses) == 40
    # The first step already sees energies as close as the best per-element
    # constants allow (the offsets are 13.5 and 432 eV per atom).
    counts, energies = [], []
    for system in trainer.train_systems:
        e = system.dataset.read_frames(system.index)["energy"]
        z = system.info.atomic_numbers
        counts += [[np.sum(z == 8), np.sum(z == 1)]] * len(e)
        energies += list(e)
    counts, energies = np.array(counts, float), np.array(energies)
    fit, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    residual = np.sqrt(np.mean(((counts @ fit - energies) / counts.sum(1)) ** 2))
    first = read_lcurve(tmp_path / "run" / "lcurve.csv")[0]
    assert first["train_energy_rmse_per_atom_eV"] < 2 * residual + 0.05
    assert residual < 0.2
    # The loss falls from the start: every window of 5 steps after the first
    # is below the first window's mean by the end.
    assert losses[:5].mean() > 2 * losses[-5:].mean()
    assert losses[5:10].mean() < losses[:5].mean()
    assert result.steps == 40


def test_sel_auto_matches_brute_force_count(water_set, tmp_path):
    from deepmd_like.data import Dataset

    data = tiny_input(str(water_set), numb_steps=1)
    data["model"]["descriptor"]["sel"] = "auto"
    trainer = Trainer(config_from_dict(data), tmp_path / "run", progress=False)
    ds = Dataset(str(water_set))
    max_counts = np.zeros(2, dtype=int)
    for i in range(len(ds)):
        frame = ds[i]
        pos = frame["positions"].numpy()
        types = np.where(frame["atomic_numbers"].numpy() == 8, 0, 1)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        near = (dist < 4.0) & ~np.eye(len(pos), dtype=bool)
        for t in (0, 1):
            max_counts[t] = max(max_counts[t], (near & (types[None] == t)).sum(1).max())
    expected = [4 * ((int(c * 1.1) + 3) // 4) for c in max_counts]
    assert trainer.model_config["descriptor"]["sel"] == expected


def test_init_model_starts_from_trained_weights(water_set, tmp_path):
    data = tiny_input(str(water_set), numb_steps=10, save_freq=10)
    first = Trainer(config_from_dict(data), tmp_path / "a", progress=False)
    first.run()
    ckpt = tmp_path / "a" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    tuned = Trainer(
        config_from_dict(data), tmp_path / "b", init_model=ckpt, progress=False
    )
    for key, value in tuned.model.state_dict().items():
        assert torch.equal(value, state["model_state"][key]), key
    assert tuned.step == 0
    # A different type map is refused by name.
    other = tiny_input(str(water_set))
    other["model"]["type_map"] = ["H", "O"]
    with pytest.raises(UserError, match="type_map"):
        Trainer(
            config_from_dict(other), tmp_path / "c", init_model=ckpt, progress=False
        )


def test_init_model_refuses_another_architecture(water_set, tmp_path, capsys):
    data = tiny_input(str(water_set), numb_steps=4, save_freq=4)
    Trainer(config_from_dict(data), tmp_path / "a", progress=False).run()
    ckpt = tmp_path / "a" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    wider = tiny_input(str(water_set))
    wider["model"]["descriptor"]["neuron"] = [8, 16]
    with pytest.raises(UserError) as info:
        Trainer(config_from_dict(wider), tmp_path / "c", init_model=ckpt,
                progress=False)
    assert str(info.value).startswith(
        "model.descriptor.neuron: input [8, 16] differs from the checkpoint's [4, 8]"
    )
    # Seeds and the overflow policy do not change the architecture.
    reseeded = tiny_input(str(water_set))
    reseeded["model"]["descriptor"].update(seed=77, sel_overflow="error")
    reseeded["model"]["fitting_net"]["seed"] = 78
    Trainer(config_from_dict(reseeded), tmp_path / "d", init_model=ckpt,
            progress=False)
    # Without a model section the checkpoint's is used.
    bare = tiny_input(str(water_set), numb_steps=2, save_freq=2)
    del bare["model"]
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bare))
    out = tmp_path / "e"
    assert main(["train", str(path), "-o", str(out), "--init-model", str(ckpt),
                 "--no-progress"]) == 0
    written = json.loads((out / "input.json").read_text())
    assert written["model"] == state["model_config"]
    wider_path = tmp_path / "wider.json"
    wider_path.write_text(json.dumps(wider))
    capsys.readouterr()
    assert main(["train", str(wider_path), "-o", str(tmp_path / "f"),
                 "--init-model", str(ckpt), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.descriptor.neuron" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()


def test_cli_outputs_and_refuses_to_overwrite(water_set, tmp_path, capsys):
    data = tiny_input(str(water_set), numb_steps=10, disp_freq=5, save_freq=5)
    data["training"]["max_ckpt_keep"] = 1
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "run"
    assert main(["train", str(path), "-o", str(out), "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint-10.pt", "checkpoint.pt", "input.json", "lcurve.csv"]
    header = (out / "lcurve.csv").read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS)
    assert "eV" in header[2] and "eV_per_A" in header[3]
    rows = read_lcurve(out / "lcurve.csv")
    assert [int(r["step"]) for r in rows] == [1, 5, 10]
    resolved = json.loads((out / "input.json").read_text())
    assert resolved["model"]["descriptor"]["sel"] == [4, 8]
    assert resolved["training"]["seed"] == 3
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 10 and state["type_map"] == ["O", "H"]
    # The checkpoint is plain data: loadable without unpickling objects.
    torch.load(out / "checkpoint.pt", weights_only=True)
    capsys.readouterr()
    mtime = (out / "checkpoint.pt").stat().st_mtime_ns
    assert main(["train", str(path), "-o", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "checkpoint.pt").stat().st_mtime_ns == mtime
