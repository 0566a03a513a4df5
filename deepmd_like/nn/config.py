"""Typed configuration of the DeepPot-SE model (``model`` section of an input).

Key names follow DeePMD-kit's input files (``type_map``, ``descriptor``
with ``type: se_e2_a``, ``sel``, ``rcut_smth``, ``rcut``, ``neuron``,
``axis_neuron``, ``type_one_side``, ``resnet_dt``, ``seed``, ``fitting_net``
with ``neuron``, ``resnet_dt``, ``seed``) so that a DeePMD-kit user's
``model`` section works unchanged. Unknown keys are an error with a
suggestion; values are checked here, once, with messages naming the key.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deepmd_like.errors import UserError
from deepmd_like.nn.networks import ACTIVATIONS

PRECISIONS = {"default": "float64", "float64": "float64", "float32": "float32"}


def _reject_unknown(section: dict, allowed: set[str], where: str) -> None:
    for key in section:
        # Keys starting with "_" are comments, as in DeePMD-kit's inputs.
        if key not in allowed and not str(key).startswith("_"):
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"{where}: unknown key {key!r}{hint}")


def _int_list(value: Any, key: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise UserError(f"{key}: expected a non-empty list of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise UserError(f"{key}: expected positive integers, got {value!r}")
        out.append(int(v))
    return out


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key}: expected true or false, got {value!r}")
    return value


def _seed(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key}: expected an integer seed, got {value!r}")
    return int(value)


def _choice(value: Any, choices, key: str) -> str:
    if value not in choices:
        raise UserError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass
class DescriptorConfig:
    """``model.descriptor`` of type ``se_e2_a``."""

    # Neighbour slots per element of the type map ("auto" is resolved from
    # the training data before the model is built).
    sel: list[int] | str = "auto"
    # Radius (Å) where the switching function starts to fall from 1.
    rcut_smth: float = 0.5
    # Cutoff radius (Å).
    rcut: float = 6.0
    # Embedding-net widths; the last is the number of filters M. Defaults
    # here are DeePMD-kit's, so its input files mean the same model.
    neuron: list[int] = field(default_factory=lambda: [10, 20, 40])
    # Filters kept in the second factor of the descriptor.
    axis_neuron: int = 4
    # One embedding net per neighbour element (True) or per element pair.
    type_one_side: bool = False
    # Learnable timestep on the embedding nets' residual branches.
    resnet_dt: bool = False
    # Activation of the embedding nets.
    activation_function: str = "tanh"
    # Floating-point precision of the model: default (float64) or float32.
    precision: str = "default"
    # Seed of the initial weights; None draws one from torch's global RNG.
    seed: int | None = None
    # What to do when an atom has more neighbours of an element than sel:
    # "warn" (drop the farthest and warn with counts) or "error".
    sel_overflow: str = "warn"
    # Descriptor type; only se_e2_a (alias se_a) is implemented.
    type: str = "se_e2_a"


@dataclass
class FittingConfig:
    """``model.fitting_net`` (type ``ener``)."""

    # Hidden widths of the fitting nets (DeePMD-kit's default).
    neuron: list[int] = field(default_factory=lambda: [120, 120, 120])
    # Learnable timestep on the residual branches.
    resnet_dt: bool = True
    # Activation of the fitting nets.
    activation_function: str = "tanh"
    # Precision; must agree with the descriptor's (or be "default").
    precision: str = "default"
    # Seed of the initial weights; None draws one from torch's global RNG.
    seed: int | None = None
    # Fitting type; only "ener" (energies) is implemented.
    type: str = "ener"


@dataclass
class TypeEmbeddingConfig:
    """``model.type_embedding``: learned element vectors, one shared net."""

    # Widths of the type-embedding net; the last is the vector length.
    neuron: list[int] = field(default_factory=lambda: [8])
    # Learnable timestep on the residual branches.
    resnet_dt: bool = False
    # Activation of the type-embedding net.
    activation_function: str = "tanh"
    # Precision (follows the descriptor's).
    precision: str = "default"
    # Seed (unused: the descriptor's generator draws the weights).
    seed: int | None = None


@dataclass
class ModelConfig:
    """``model`` section of an input file."""

    # Element symbols, in the order of the type indices.
    type_map: list[str] = field(default_factory=list)
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    fitting_net: FittingConfig = field(default_factory=FittingConfig)
    # Optional learned type vectors (one shared embedding and fitting net).
    type_embedding: TypeEmbeddingConfig | None = None
    # Number of batches the input statistics are computed from.
    data_stat_nbatch: int = 10
    # Smallest standard deviation used to normalise the environment matrix.
    data_stat_protect: float = 1e-2

    @property
    def dtype_name(self) -> str:
        return PRECISIONS[self.descriptor.precision]

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable) that :meth:`from_dict` reads back."""
        out = asdict(self)
        if self.type_embedding is None:
            del out["type_embedding"]
        return out

    @classmethod
    def from_dict(cls, model: dict, where: str = "model") -> "ModelConfig":
        """Validate a ``model`` section and fill in defaults.

        Raises
        ------
        UserError
            For an unknown key, a value of the wrong type, a negative
            ``rcut``, ``rcut_smth >= rcut``, ``sel`` of the wrong length, ...
        """
        if not isinstance(model, dict):
            raise UserError(f"{where}: expected a mapping, got {type(model).__name__}")
        top = {f.name for f in fields(cls)}
        _reject_unknown(model, top, where)
        type_map = model.get("type_map")
        if (
            not isinstance(type_map, (list, tuple))
            or not type_map
            or not all(isinstance(t, str) and t for t in type_map)
        ):
            raise UserError(
                f"{where}.type_map: expected a list of element symbols, got "
                f"{type_map!r}"
            )
        if len(set(type_map)) != len(type_map):
            raise UserError(f"{where}.type_map: repeated element in {type_map!r}")
        from ase.data import atomic_numbers

        for symbol in type_map:
            if symbol not in atomic_numbers or symbol == "X":
                raise UserError(
                    f"{where}.type_map: {symbol!r} is not an element symbol"
                )
        descriptor = _descriptor(model.get("descriptor", {}), len(type_map), where)
        fitting = _fitting(model.get("fitting_net", {}), where)
        if PRECISIONS[fitting.precision] != PRECISIONS[descriptor.precision]:
            raise UserError(
                f"{where}.fitting_net.precision ({fitting.precision}) differs from "
                f"{where}.descriptor.precision ({descriptor.precision}); mixed "
                "precision is not supported"
            )
        type_embedding = None
        if model.get("type_embedding") is not None:
            type_embedding = _type_embedding(model["type_embedding"], where)
        nbatch = model.get("data_stat_nbatch", 10)
        if isinstance(nbatch, bool) or not isinstance(nbatch, int) or nbatch <= 0:
            raise UserError(
                f"{where}.data_stat_nbatch: expected a positive integer, got {nbatch!r}"
            )
        protect = _number(model.get("data_stat_protect", 1e-2),
                          f"{where}.data_stat_protect")
        if protect <= 0:
            raise UserError(f"{where}.data_stat_protect: must be positive")
        return cls(
            type_map=list(type_map),
            descriptor=descriptor,
            fitting_net=fitting,
            type_embedding=type_embedding,
            data_stat_nbatch=nbatch,
            data_stat_protect=protect,
        )


def _read_net_settings(config: Any, section: dict, key: str) -> None:
    """Settings shared by the embedding and fitting nets, read into ``config``."""
    config.resnet_dt = _bool(section.get("resnet_dt", config.resnet_dt),
                             f"{key}.resnet_dt")
    config.activation_function = _choice(
        section.get("activation_function", "tanh"), ACTIVATIONS,
        f"{key}.activation_function",
    )
    config.precision = _choice(
        section.get("precision", "default"), tuple(PRECISIONS), f"{key}.precision"
    )
    config.seed = _seed(section.get("seed"), f"{key}.seed")


def _descriptor(section: Any, n_types: int, where: str) -> DescriptorConfig:
    key = f"{where}.descriptor"
    if not isinstance(section, dict):
        raise UserError(f"{key}: expected a mapping")
    _reject_unknown(section, {f.name for f in fields(DescriptorConfig)}, key)
    kind = section.get("type", "se_e2_a")
    if kind not in ("se_e2_a", "se_a"):
        raise UserError(
            f"{key}.type: only 'se_e2_a' is implemented by this model, got {kind!r}"
        )
    config = DescriptorConfig()
    sel = section.get("sel", "auto")
    if isinstance(sel, str):
        if not sel.startswith("auto"):
            raise UserError(f"{key}.sel: expected a list of integers or 'auto'")
        config.sel = sel
    else:
        config.sel = _int_list(sel, f"{key}.sel")
        if len(config.sel) != n_types:
            raise UserError(
                f"{key}.sel: has {len(config.sel)} entries but the type map has "
                f"{n_types} elements; give one count per element"
            )
    config.rcut = _number(section.get("rcut", config.rcut), f"{key}.rcut")
    config.rcut_smth = _number(
        section.get("rcut_smth", config.rcut_smth), f"{key}.rcut_smth"
    )
    if config.rcut <= 0:
        raise UserError(f"{key}.rcut: must be positive, got {config.rcut}")
    if config.rcut_smth < 0:
        raise UserError(
            f"{key}.rcut_smth: must not be negative, got {config.rcut_smth}"
        )
    if config.rcut_smth >= config.rcut:
        raise UserError(
            f"{key}.rcut_smth ({config.rcut_smth}) must be smaller than "
            f"{key}.rcut ({config.rcut})"
        )
    config.neuron = _int_list(section.get("neuron", config.neuron), f"{key}.neuron")
    axis = section.get("axis_neuron", config.axis_neuron)
    if isinstance(axis, bool) or not isinstance(axis, int) or axis <= 0:
        raise UserError(f"{key}.axis_neuron: expected a positive integer, got {axis!r}")
    if axis > config.neuron[-1]:
        raise UserError(
            f"{key}.axis_neuron ({axis}) exceeds the last embedding width "
            f"({config.neuron[-1]})"
        )
    config.axis_neuron = axis
    config.type_one_side = _bool(
        section.get("type_one_side", config.type_one_side), f"{key}.type_one_side"
    )
    _read_net_settings(config, section, key)
    config.sel_overflow = _choice(
        section.get("sel_overflow", "warn"), ("warn", "error"), f"{key}.sel_overflow"
    )
    return config


def _fitting(section: Any, where: str) -> FittingConfig:
    key = f"{where}.fitting_net"
    if not isinstance(section, dict):
        raise UserError(f"{key}: expected a mapping")
    _reject_unknown(section, {f.name for f in fields(FittingConfig)}, key)
    if section.get("type", "ener") != "ener":
        raise UserError(f"{key}.type: only 'ener' is implemented")
    config = FittingConfig()
    config.neuron = _int_list(section.get("neuron", config.neuron), f"{key}.neuron")
    _read_net_settings(config, section, key)
    return config


def _type_embedding(section: Any, where: str) -> TypeEmbeddingConfig:
    key = f"{where}.type_embedding"
    if not isinstance(section, dict):
        raise UserError(f"{key}: expected a mapping")
    _reject_unknown(section, {f.name for f in fields(TypeEmbeddingConfig)}, key)
    config = TypeEmbeddingConfig()
    config.neuron = _int_list(section.get("neuron", config.neuron), f"{key}.neuron")
    _read_net_settings(config, section, key)
    return config
