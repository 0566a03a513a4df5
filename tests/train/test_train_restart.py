"""``--restart`` continues bit-for-bit like an uninterrupted run."""

import json

import pytest
import torch

from deepmd_like.cli import main
from deepmd_like.config import config_from_dict
from deepmd_like.train.checkpoint import load_checkpoint
from deepmd_like.train.lcurve import read_lcurve
from deepmd_like.train.trainer import Trainer

from conftest import tiny_input


class _Stop(Exception):
    pass


def test_restart_is_identical_to_an_uninterrupted_run(water_set, tmp_path):
    data = tiny_input(
        str(water_set) + ":monomer",
        str(water_set) + ":dimer",
        numb_steps=20,
        disp_freq=5,
        save_freq=10,
    )
    # Two systems of different sizes sampled at random, plus validation
    # batches drawn at random: all of it must continue identically.
    data["training"]["training_data"]["systems"] = [str(water_set)]
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))

    whole = tmp_path / "whole"
    assert main(["train", str(path), "-o", str(whole), "--no-progress"]) == 0

    # The same run killed at step 15, after a learning-curve line but five
    # steps past its last checkpoint (step 10).
    cut = tmp_path / "cut"

    def stop(step, _row):
        if step == 15:
            raise _Stop

    trainer = Trainer(config_from_dict(data), cut, progress=False)
    with pytest.raises(_Stop):
        trainer.run(callback=stop)
    assert load_checkpoint(cut / "checkpoint.pt")["step"] == 10
    assert [int(r["step"]) for r in read_lcurve(cut / "lcurve.csv")] == [1, 5, 10, 15]

    assert (
        main(
            [
                "train",
                str(path),
                "-o",
                str(cut),
                "--restart",
                str(cut / "checkpoint.pt"),
                "--no-progress",
            ]
        )
        == 0
    )

    a = load_checkpoint(whole / "checkpoint.pt")
    b = load_checkpoint(cut / "checkpoint.pt")
    assert a["step"] == b["step"] == 20
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    for pa, pb in zip(
        a["optimizer_state"]["state"].values(), b["optimizer_state"]["state"].values()
    ):
        assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    assert a["sampler_state"] == b["sampler_state"]

    rows_a = read_lcurve(whole / "lcurve.csv")
    rows_b = read_lcurve(cut / "lcurve.csv")
    assert [int(r["step"]) for r in rows_b] == [1, 5, 10, 15, 20]
    for ra, rb in zip(rows_a, rows_b):
        ra.pop("wall_time_s"), rb.pop("wall_time_s")
        assert json.dumps(ra) == json.dumps(rb)
