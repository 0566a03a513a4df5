"""DeepPot-SE model plumbing: configuration errors, energy shifts, neighbour
overflow, compression, freezing, loading and ``dpl freeze``."""

import json
import re
import warnings
import zipfile

import numpy as np
import pytest
import torch

from deepmd_like.cli import main
from deepmd_like.errors import UserError
from deepmd_like.nn.config import ModelConfig
from deepmd_like.nn.evaluate import evaluate
from deepmd_like.nn.export import freeze, load_model
from deepmd_like.nn.fitting import compute_energy_shift
from deepmd_like.nn.model import EnergyModel
from deepmd_like.nn.testing import make_batch
from deepmd_like.train.checkpoint import load_checkpoint

CELL = np.array([[5.6, 0.0, 0.0], [0.8, 5.1, 0.0], [-0.4, 0.6, 5.3]])


def config(**descriptor):
    base = {"sel": [20, 36], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
            "axis_neuron": 3, "seed": 5}
    base.update(descriptor)
    return {"type_map": ["O", "H"], "descriptor": base,
            "fitting_net": {"neuron": [8, 8], "seed": 6}}


def structure(seed, n_atoms, periodic=True):
    rng = np.random.default_rng(seed)
    cell = CELL * (n_atoms / 9) ** (1 / 3)
    while True:
        pos = rng.uniform(0, 1, (n_atoms, 3)) @ cell
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 9 * np.eye(n_atoms)
        if n_atoms == 1 or d.min() > 0.9:
            break
    numbers = [8 if k % 3 == 0 else 1 for k in range(n_atoms)]
    if periodic:
        return {"positions": pos, "numbers": numbers, "cell": cell,
                "pbc": (True, True, True)}
    return {"positions": pos, "numbers": numbers}


def ready_model(**descriptor):
    model = EnergyModel(config(**descriptor))
    model.compute_input_stats([make_batch([structure(0, 9)])])
    model.set_energy_shift(np.array([-430.1, -12.7]))
    with torch.no_grad():
        for net in model.core.fitting.nets:
            net.layers[-1].weight.mul_(100.0)
    return model


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rcut": -1.0}, "rcut: must be positive"),
        ({"rcut_smth": 4.0}, "rcut_smth .* must be smaller"),
        ({"sel": [10]}, "sel: has 1 entries but the type map has 2"),
        ({"neuronn": [4]}, "unknown key 'neuronn'; did you mean 'neuron'"),
        ({"axis_neuron": 9}, "axis_neuron"),
    ],
)
def test_bad_descriptor_settings_are_named(change, message):
    with pytest.raises(UserError, match=message):
        ModelConfig.from_dict(config(**change))


def test_bad_type_map_and_sections():
    with pytest.raises(UserError, match="type_map"):
        ModelConfig.from_dict({"type_map": ["O", "Xx"]})
    with pytest.raises(UserError, match="unknown key 'fiting_net'"):
        ModelConfig.from_dict({"type_map": ["O"], "fiting_net": {}})
    with pytest.raises(UserError, match="'auto'"):
        EnergyModel({"type_map": ["O"], "descriptor": {"sel": "auto"}})


def test_config_round_trips_through_a_plain_dict():
    parsed = ModelConfig.from_dict(config())
    again = ModelConfig.from_dict(json.loads(json.dumps(parsed.to_dict())))
    assert again == parsed


def test_energy_shift_recovers_per_element_energies():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, (30, 3))
    counts[:, 2] = 0  # an element absent from the data gets zero
    truth = np.array([-430.25, -13.5, 0.0])
    energies = counts @ truth
    assert np.allclose(compute_energy_shift(counts, energies), truth, atol=1e-9)

    # The model's own fit from labelled batches: a monomer and a dimer.
    model = EnergyModel(config())
    frames = [structure(1, 3, periodic=False), structure(2, 6, periodic=False)]
    batch = make_batch(frames)
    batch["energy"] = torch.tensor([-430.25 - 2 * 13.5, 2 * (-430.25 - 2 * 13.5)],
                                   dtype=torch.float64)
    shift = model.fit_energy_shift([batch])
    assert np.allclose(shift, [-430.25 - 2 * 13.5, 0.0], atol=1e-9) or np.allclose(
        np.array([1, 2]) @ shift, -430.25 - 2 * 13.5, atol=1e-9
    )
    # Whatever the split between elements, the fitted shifts reproduce the
    # energies (the compositions are proportional here).
    assert np.allclose([1, 2] @ shift, -457.25, atol=1e-9)


def test_sel_overflow_warns_with_counts_or_errors():
    model = ready_model(sel=[2, 3])
    batch = make_batch([structure(3, 9)])
    with pytest.warns(RuntimeWarning, match=r"\d+ neighbour pair\(s\) .* of 9 atom"):
        model(batch)
    strict = EnergyModel(config(sel=[2, 3], sel_overflow="error"))
    with pytest.raises(UserError, match="sel .* too small"):
        strict(batch)


def test_sel_overflow_warning_is_not_repeated_every_call(tmp_path):
    # An MD run or a training loop calls the model every step: the warning is
    # shown on the 1st and 10th call (with the count), from our own module.
    from deepmd_like.nn import model as model_module

    batch = make_batch([structure(3, 9)])
    for model in (ready_model(sel=[2, 3]),
                  load_model(freeze(ready_model(sel=[2, 3]), tmp_path / "m.pt"))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(35):
                evaluate(model, batch)
        shown = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(shown) == 2, [str(w.message) for w in shown]
        assert "call 1 " in str(shown[0].message)
        assert "call 10 " in str(shown[1].message)
        assert re.search(r"\d+ neighbour pair\(s\)", str(shown[1].message))
        assert all(w.filename == model_module.__file__ for w in shown)


def test_compressed_model_matches_exact_nets():
    model = ready_model()
    frames = [structure(4, 9), structure(5, 14)]
    batch = make_batch(frames)
    exact = evaluate(model, batch, virial=True)
    model.compress(min_distance=0.8, step=0.01)
    fast = evaluate(model, batch, virial=True)
    for key in ("energy", "forces", "virial"):
        scale = float(exact[key].abs().max())
        assert float((fast[key] - exact[key]).abs().max()) < 1e-7 * scale, key


@pytest.mark.parametrize("compress", [False, True])
def test_frozen_model_equals_eager_on_several_sizes(tmp_path, compress):
    model = ready_model(type_one_side=not compress)
    if compress:
        model.compress()
    path = freeze(model, tmp_path / "model.pt")
    frozen = load_model(path)
    assert frozen.type_map == ["O", "H"] and frozen.cutoff == 4.0
    assert frozen.model_type == "se_e2_a"
    for frames in ([structure(6, 1)], [structure(7, 5, periodic=False)],
                   [structure(8, 9), structure(9, 30)]):
        batch = make_batch(frames)
        a = evaluate(model, batch, virial=True)
        b = evaluate(frozen, batch, virial=True)
        for key in ("energy", "atom_energy", "forces", "virial"):
            assert torch.allclose(a[key], b[key], rtol=1e-13, atol=1e-13), key
    with pytest.raises(UserError, match="not in the model's type map"):
        frozen(make_batch([{"positions": [[0, 0, 0]], "numbers": [6]}]))
    with pytest.raises(UserError, match="already exists"):
        freeze(model, path)


def test_loading_a_checkpoint_and_casting(tmp_path):
    model = ready_model()
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"format": "deepmd_like/checkpoint", "version": 1,
                "model_config": model.config.to_dict(),
                "model_state": model.state_dict(), "type_map": model.type_map,
                "step": 10}, checkpoint)
    loaded = load_model(checkpoint)
    batch = make_batch([structure(10, 9)])
    a, b = evaluate(model, batch), evaluate(loaded, batch)
    assert torch.equal(a["energy"], b["energy"]) and torch.equal(a["forces"],
                                                                 b["forces"])
    single = load_model(checkpoint, dtype=torch.float32)
    c = evaluate(single, batch)
    assert c["energy"].dtype == torch.float64
    assert float((c["energy"] - a["energy"]).abs().max()) < 1e-3
    assert float((c["forces"] - a["forces"]).abs().max()) < 1e-3


def test_newer_format_versions_are_refused(tmp_path):
    model = ready_model()
    path = freeze(model, tmp_path / "model.pt")
    newer = tmp_path / "newer.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("extra/metadata.json"):
                meta = json.loads(data)
                meta["version"] = 99
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(UserError, match="version 99 is newer"):
        load_model(newer)
    with pytest.raises(UserError, match="no such model file"):
        load_model(tmp_path / "missing.pt")


def test_dpl_freeze_command(tmp_path, capsys):
    model = ready_model()
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model_config": model.config.to_dict(),
                "model_state": model.state_dict(), "type_map": model.type_map},
               checkpoint)
    out = tmp_path / "frozen.pt"
    assert main(["freeze", str(checkpoint), "-o", str(out)]) == 0
    assert main(["freeze", str(checkpoint), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["freeze", str(checkpoint), "-o", str(out), "--overwrite",
                 "--compress"]) == 0
    frozen = load_model(out)
    assert frozen.metadata["compressed"] is True
    batch = make_batch([structure(11, 9)])
    a, b = evaluate(model, batch), evaluate(frozen, batch)
    assert float((a["forces"] - b["forces"]).abs().max()) < 1e-7 * float(
        a["forces"].abs().max())
    assert main(["freeze", str(tmp_path / "nope.pt"), "-o",
                 str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("type_one_side", [True, False])
def test_gradient_of_a_force_loss_matches_finite_differences(type_one_side):
    # Training on forces differentiates the forces again (double backward).
    model = ready_model(type_one_side=type_one_side)
    batch = make_batch([structure(12, 9)])
    weights = torch.randn(9, 3, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)

    def loss():
        out = evaluate(model, batch, create_graph=True)
        return (out["forces"] * weights).sum() + 0.1 * out["energy"].sum()

    embedding = model.descriptor.embedding.nets[1]
    for parameter, index in ((embedding.layers[1].weight, (2, 5)),
                             (embedding.layers[0].bias, (3,)),
                             (model.core.fitting.nets[0].layers[0].weight, (7, 4))):
        grad = torch.autograd.grad(loss(), parameter)[0][index]
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                parameter[index] += sign * 1e-5
            values.append(float(loss()))
            with torch.no_grad():
                parameter[index] -= sign * 1e-5
        numerical = (values[0] - values[1]) / 2e-5
        assert abs(float(grad) - numerical) < 1e-6 * max(1.0, abs(numerical))
        assert abs(numerical) > 1e-6


def test_unreadable_and_frozen_inputs_fail_in_one_short_line(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02}q\x00" + bytes(range(256)) * 4)
    for call in (lambda: load_model(garbage),
                 lambda: load_checkpoint(garbage)):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert message.startswith(
            f"{garbage}: not a deepmd-like checkpoint or frozen model (")
        assert "\n" not in message and len(message) < 200
        assert "weights_only" not in message and "arbitrary" not in message
    assert main(["freeze", str(garbage), "-o", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "weights_only" not in err
    frozen = freeze(ready_model(), tmp_path / "frozen.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match="is already a frozen model"):
            load_checkpoint(frozen)
        assert main(["freeze", str(frozen), "-o", str(tmp_path / "y.pt")]) == 2
    err = capsys.readouterr().err
    assert "already a frozen model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()
