"""The input schema: defaults, DeePMD-kit layouts, and one-line errors for bad input."""

import copy
import json

import pytest

from deepmd_like.cli import main
from deepmd_like.config import config_from_dict, load_input
from deepmd_like.errors import UserError

from conftest import tiny_input


def test_deepmd_example_layout_loads(repo_root):
    config = load_input(repo_root / "potentials" / "water-se_e2_a" / "input.json")
    d = config.model.descriptor
    assert (d.rcut, d.rcut_smth, d.sel, d.neuron, d.axis_neuron) == (
        6.0,
        0.5,
        [46, 92],
        [25, 50, 100],
        16,
    )
    assert config.model.fitting_net.neuron == [240, 240, 240]
    assert config.model.fitting_net.resnet_dt is True
    assert config.learning_rate.stop_lr == pytest.approx(3.51e-8)
    systems = config.training.training_data.systems
    assert systems == [
        str(repo_root / "datasets" / "water.h5") + ":data_0,data_1,data_2"
    ]


def test_data_shorthands_and_defaults(water_set, tmp_path):
    data = tiny_input(str(water_set))
    data["training"]["training_data"] = str(water_set) + ":monomer"
    data["training"]["validation_data"] = [str(water_set)]
    config = config_from_dict(data)
    assert config.training.training_data.systems == [str(water_set) + ":monomer"]
    assert config.training.training_data.batch_size == "auto"
    assert config.training.training_data.auto_prob == "prob_sys_size"
    assert config.training.validation_data.systems == [str(water_set)]
    # DeePMD-kit's defaults.
    assert config.loss.start_pref_f == 1000 and config.loss.limit_pref_e == 1
    assert config.learning_rate.decay_rate is None
    assert config.training.validation_data.numb_btch == 1


def test_relative_paths_are_resolved_against_the_input_file(water_set, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "set.h5").write_bytes(water_set.read_bytes())
    data = tiny_input("set.h5:dimer")
    path = folder / "input.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    config = load_input(path)
    assert config.training.training_data.systems == [str(folder / "set.h5") + ":dimer"]


def _bad_inputs(water, empty):
    """(name, edit of the input dict, words the error must contain)."""

    def set_(path, value):
        def edit(d):
            node = d
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value

        return edit

    return [
        (
            "unknown key",
            set_(("model", "descriptor", "rcutt"), 5.0),
            ["model.descriptor", "'rcutt'", "did you mean 'rcut'"],
        ),
        (
            "unknown section key",
            set_(("training", "numb_step"), 5),
            ["training.numb_step", "numb_steps"],
        ),
        (
            "negative rcut",
            set_(("model", "descriptor", "rcut"), -1.0),
            ["model.descriptor.rcut", "positive"],
        ),
        (
            "rcut_smth >= rcut",
            set_(("model", "descriptor", "rcut_smth"), 4.0),
            ["rcut_smth", "smaller than"],
        ),
        (
            "sel wrong length",
            set_(("model", "descriptor", "sel"), [4, 8, 2]),
            ["model.descriptor.sel", "3 entries", "2 elements"],
        ),
        (
            "wrong type",
            set_(("training", "numb_steps"), "many"),
            ["training.numb_steps", "integer"],
        ),
        (
            "type map missing an element",
            lambda d: (
                set_(("model", "type_map"), ["O"])(d),
                set_(("model", "descriptor", "sel"), [4])(d),
            ),
            ["contains H", "type_map"],
        ),
        (
            "empty dataset",
            set_(("training", "training_data", "systems"), [str(empty)]),
            [str(empty), "no systems"],
        ),
        (
            "missing dataset",
            set_(("training", "training_data", "systems"), ["nope.h5"]),
            ["nope.h5", "does not exist"],
        ),
        (
            "missing system",
            set_(("training", "training_data", "systems"), [str(water) + ":trimer"]),
            ["trimer"],
        ),
    ]


@pytest.fixture(scope="module")
def empty_set(tmp_path_factory):
    from deepmd_like.data import DatasetWriter

    path = tmp_path_factory.mktemp("empty") / "empty.h5"
    with DatasetWriter(path):
        pass
    return path


@pytest.mark.parametrize("case", range(10))
def test_bad_input_one_line_exit_2_nothing_written(
    case, water_set, empty_set, tmp_path, monkeypatch, capsys
):
    name, edit, words = _bad_inputs(water_set, empty_set)[case]
    data = tiny_input(str(water_set))
    edit(data)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["train", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, name
    lines = err.strip().splitlines()
    assert len(lines) == 1, (name, err)
    for word in words:
        assert word in lines[0], (name, lines[0])
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, name


def test_comments_are_ignored_and_values_type_checked(water_set):
    data = tiny_input(str(water_set))
    data["_comment"] = "top"
    data["model"]["descriptor"]["_comment"] = "inner"
    config_from_dict(copy.deepcopy(data))
    data["model"]["descriptor"]["resnet_dt"] = "yes"
    with pytest.raises(UserError, match="resnet_dt"):
        config_from_dict(data)
