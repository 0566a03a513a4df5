"""The training input file: a typed schema with DeePMD-kit's layout and names.

An input file (JSON or YAML) has four sections, as in DeePMD-kit::

    model:          type_map, descriptor (se_e2_a), fitting_net
    learning_rate:  type "exp", start_lr, stop_lr, decay_steps
    loss:           type "ener", start_pref_e/f/v, limit_pref_e/f/v
    training:       training_data, validation_data, numb_steps, seed,
                    disp_freq, save_freq, ...

Every section loads into a dataclass; the dataclass fields are the one place
where defaults live. The ``model`` section is the model's own
:class:`deepmd_like.nn.config.ModelConfig` (its defaults and checks live
with the model); the other sections are defined here. Keys that start with
an underscore (``_comment``) are ignored, as DeePMD-kit does. Any other
unknown key is an error that names its path in the file and suggests the
nearest known key. Values are checked for type and range here; checks that
need the data (a type map missing an element, ``sel: "auto"``) happen when the
trainer opens the datasets.

Data references are the project's HDF5 files: ``"FILE.h5"`` (all systems) or
``"FILE.h5:NAME,NAME"`` (some systems). ``training_data`` may be such a
string, a list of them, or DeePMD-kit's ``{"systems": [...], "batch_size":
...}`` mapping. Relative paths are resolved against the input file's folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from deepmd_like import typed_config
from deepmd_like.errors import UserError
from deepmd_like.nn.config import ModelConfig

__all__ = [
    "DataConfig",
    "InputConfig",
    "LearningRateConfig",
    "LossConfig",
    "ModelConfig",
    "TrainingConfig",
    "config_from_dict",
    "load_input",
    "parse_data_reference",
]


@dataclass
class LearningRateConfig:
    """Exponential decay in stages: DeePMD-kit's ``exp`` learning rate."""

    # Only exponential decay.
    type: str = "exp"
    # Learning rate at step 0.
    start_lr: float = 1e-3
    # Learning rate reached at training.numb_steps (and its lower bound).
    stop_lr: float = 1e-8
    # The rate is constant within stages of this many steps.
    decay_steps: int = 5000
    # If given, used instead of the rate derived from start_lr and stop_lr.
    decay_rate: Union[float, None] = None

    def validate(self, path: str) -> None:
        if self.type != "exp":
            raise UserError(
                f'{path}.type: learning rate {self.type!r} is not supported; use "exp"'
            )
        if not self.start_lr > 0:
            raise UserError(f"{path}.start_lr must be positive, got {self.start_lr}")
        if not self.stop_lr > 0:
            raise UserError(f"{path}.stop_lr must be positive, got {self.stop_lr}")
        if self.decay_steps < 1:
            raise UserError(f"{path}.decay_steps must be >= 1, got {self.decay_steps}")
        if self.decay_rate is not None and not 0 < self.decay_rate <= 1:
            raise UserError(
                f"{path}.decay_rate must be in (0, 1], got {self.decay_rate}"
            )


@dataclass
class LossConfig:
    """Energy/force/virial loss with prefactors interpolated by the learning rate."""

    # Only the standard energy loss.
    type: str = "ener"
    # Energy prefactor at the start and at the end of training.
    start_pref_e: float = 0.02
    limit_pref_e: float = 1.0
    # Force prefactor at the start and at the end of training.
    start_pref_f: float = 1000.0
    limit_pref_f: float = 1.0
    # Virial prefactor at the start and at the end of training.
    start_pref_v: float = 0.0
    limit_pref_v: float = 0.0

    def validate(self, path: str) -> None:
        if self.type != "ener":
            raise UserError(
                f'{path}.type: loss {self.type!r} is not supported; use "ener"'
            )
        for name in ("e", "f", "v"):
            for kind in ("start", "limit"):
                key = f"{kind}_pref_{name}"
                if getattr(self, key) < 0:
                    raise UserError(f"{path}.{key} must be >= 0")
        if (
            self.start_pref_e
            + self.limit_pref_e
            + self.start_pref_f
            + (self.limit_pref_f + self.start_pref_v + self.limit_pref_v)
            == 0
        ):
            raise UserError(f"{path}: every prefactor is zero; nothing to learn")


@dataclass
class DataConfig:
    """A set of systems and how batches are drawn from them."""

    # Data references: "FILE.h5" or "FILE.h5:NAME,NAME", resolved to absolute.
    systems: list[str] = field(default_factory=list)
    # Structures per batch: an int, "auto" (>= 32 atoms) or "auto:N" (>= N atoms).
    batch_size: Union[int, str] = "auto"
    # How systems are picked: "prob_sys_size", "prob_uniform", or
    # "prob_sys_size;START:END:WEIGHT;..." (blocks of systems).
    auto_prob: str = "prob_sys_size"
    # Explicit probability per system (overrides auto_prob).
    sys_probs: Union[list[float], None] = None
    # Validation only: batches evaluated at each display step.
    numb_btch: int = 1

    def validate(self, path: str) -> None:
        if not self.systems:
            raise UserError(f"{path}.systems is empty; give at least one FILE.h5")
        for ref in self.systems:
            file, _ = parse_data_reference(ref)
            if not Path(file).is_file():
                raise UserError(f"{path}.systems: dataset {file} does not exist")
        if isinstance(self.batch_size, str):
            auto_batch_atoms(self.batch_size, f"{path}.batch_size")
        elif self.batch_size < 1:
            raise UserError(f"{path}.batch_size must be >= 1, got {self.batch_size}")
        if self.sys_probs is not None:
            if any(p < 0 for p in self.sys_probs) or sum(self.sys_probs) <= 0:
                raise UserError(
                    f"{path}.sys_probs must be non-negative with a positive sum"
                )
        if self.numb_btch < 1:
            raise UserError(f"{path}.numb_btch must be >= 1")


@dataclass
class TrainingConfig:
    """The optimisation run: data, length, output frequency, seed."""

    # Training systems.
    training_data: DataConfig = field(default_factory=DataConfig)
    # Validation systems (optional).
    validation_data: Union[DataConfig, None] = None
    # Number of optimiser steps.
    numb_steps: int = 1000
    # Seed of every random choice (weights, batch order).
    seed: Union[int, None] = None
    # Steps between learning-curve lines.
    disp_freq: int = 1000
    # Steps between checkpoints.
    save_freq: int = 1000
    # Numbered checkpoints kept (the latest checkpoint.pt is always kept).
    max_ckpt_keep: int = 5
    # Name of the learning-curve file in the run folder.
    disp_file: str = "lcurve.csv"
    # Torch threads for training (0: leave torch's default).
    num_threads: int = 0

    def validate(self, path: str) -> None:
        self.training_data.validate(f"{path}.training_data")
        if self.validation_data is not None:
            self.validation_data.validate(f"{path}.validation_data")
        for key in ("numb_steps", "disp_freq", "save_freq"):
            if getattr(self, key) < 1:
                raise UserError(f"{path}.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_ckpt_keep < 0:
            raise UserError(f"{path}.max_ckpt_keep must be >= 0")
        if self.num_threads < 0:
            raise UserError(f"{path}.num_threads must be >= 0")
        if "/" in self.disp_file or self.disp_file in ("", ".", ".."):
            raise UserError(f"{path}.disp_file must be a plain file name")


@dataclass
class InputConfig:
    """A whole training input file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    learning_rate: LearningRateConfig = field(default_factory=LearningRateConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self) -> None:
        self.learning_rate.validate("learning_rate")
        self.loss.validate("loss")
        self.training.validate("training")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-compatible data (every default filled)."""
        out = {"model": self.model.to_dict()}
        for name in ("learning_rate", "loss", "training"):
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


# ---------------------------------------------------------------- helpers


def parse_data_reference(ref: str) -> tuple[str, list[str] | None]:
    """Split ``"FILE.h5:NAME,NAME"`` into the file and the system names.

    Returns
    -------
    file : str
    names : list of str or None
        None means every system of the file.
    """
    head, sep, tail = ref.rpartition(":")
    # A colon inside a path (or a Windows drive) is not a system list unless
    # what precedes it is an HDF5 file name.
    if sep and head.endswith((".h5", ".hdf5")):
        names = [n.strip() for n in tail.split(",") if n.strip()]
        return head, names or None
    return ref, None


def auto_batch_atoms(value: str, path: str) -> int:
    """Atoms a batch must reach for ``"auto"`` (32) or ``"auto:N"`` (N)."""
    if value == "auto":
        return 32
    if value.startswith("auto:"):
        try:
            n = int(value[5:])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise UserError(
        f'{path} must be a positive integer, "auto" or "auto:N"; got {value!r}'
    )


def auto_sel_ratio(value: str, path: str) -> float:
    """Safety factor of ``sel: "auto"`` (1.1) or ``"auto:RATIO"``."""
    if value == "auto":
        return 1.1
    if value.startswith("auto:"):
        try:
            ratio = float(value[5:])
        except ValueError:
            ratio = 0.0
        if ratio >= 1.0:
            return ratio
    raise UserError(
        f'{path} must be a list of integers, "auto" or "auto:RATIO" (RATIO >= 1); '
        f"got {value!r}"
    )


def _normalise_data_section(value: Any, path: str, base: Path) -> Any:
    """Accept a reference string, a list of them, or DeePMD's mapping."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"systems": [value]}
    elif isinstance(value, list):
        value = {"systems": value}
    elif not isinstance(value, dict):
        raise UserError(
            f'{path} must be a data reference ("FILE.h5[:NAME,...]"), a list of '
            'them, or a mapping with "systems"'
        )
    value = dict(value)
    systems = value.get("systems")
    if isinstance(systems, str):
        systems = [systems]
    if isinstance(systems, list):
        resolved = []
        for i, ref in enumerate(systems):
            if not isinstance(ref, str):
                raise UserError(f"{path}.systems[{i}] must be a string, got {ref!r}")
            file, names = parse_data_reference(ref)
            file_path = Path(file).expanduser()
            if not file_path.is_absolute():
                file_path = base / file_path
            file_path = Path(os.path.normpath(file_path))
            resolved.append(str(file_path) + (":" + ",".join(names) if names else ""))
        value["systems"] = resolved
    return value


def _without_comments(value: Any) -> Any:
    """Drop keys starting with ``_`` (DeePMD-kit's ``_comment``) at any depth."""
    if isinstance(value, dict):
        return {
            k: _without_comments(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.startswith("_"))
        }
    if isinstance(value, list):
        return [_without_comments(v) for v in value]
    return value


def config_from_dict(data: dict[str, Any], base_dir: str | Path = ".") -> InputConfig:
    """Build and validate an :class:`InputConfig` from plain data.

    Parameters
    ----------
    data : dict
        The parsed input file.
    base_dir : path
        Folder against which relative dataset paths are resolved.
    """
    if not isinstance(data, dict):
        raise UserError(
            "the input must be a mapping with model, learning_rate, loss and training"
        )
    base = Path(base_dir).resolve()
    data = dict(data)
    training = data.get("training")
    if isinstance(training, dict):
        training = dict(training)
        for key in ("training_data", "validation_data"):
            if key in training:
                training[key] = _normalise_data_section(
                    training[key], f"training.{key}", base
                )
        data["training"] = training
    model = _without_comments(data.pop("model", None))
    if model is None:
        raise UserError("the model section is required (type_map, descriptor, ...)")
    config = typed_config.build(
        InputConfig, data, "", skip_comments=True, opaque=(ModelConfig,)
    )
    config.model = ModelConfig.from_dict(model, where="model")
    if "training" not in data or "training_data" not in data["training"]:
        raise UserError('training.training_data is required (e.g. "data.h5")')
    config.validate()
    return config


def load_input(path: str | Path) -> InputConfig:
    """Read a JSON or YAML input file and return its validated configuration.

    Errors name the file and the key path, e.g.
    ``input.json: model.descriptor.rcut must be positive, got -1.0``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as err:
        raise UserError(f"{path}: not valid JSON/YAML: {err}") from None
    except Exception as err:  # yaml.YAMLError
        raise UserError(f"{path}: not valid YAML: {err}") from None
    try:
        return config_from_dict(data, base_dir=path.parent)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
