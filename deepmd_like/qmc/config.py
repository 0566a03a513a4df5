"""Typed input for ``dpl vmc``: the one place where defaults live.

An input file is YAML with the sections below; every key is optional except
``system.atoms`` and ``system.unit``. Unknown keys are an error that names
the closest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepmd_like.errors import UserError


@dataclass
class SystemConfig:
    """The molecule."""

    atoms: list = field(default_factory=list)  # [[symbol, x, y, z], ...]
    unit: str | None = None  # 'bohr' or 'angstrom'; required
    charge: int = 0  # total charge, e
    spin: int = 0  # 2S = n_up - n_down
    name: str = ""  # label for outputs; default the formula
    exact_energy: float | None = None  # exact or best known energy, Ha


@dataclass
class AnsatzConfig:
    """The wavefunction."""

    kind: str = "ferminet"  # 'ferminet' or 'slater_jastrow'
    n_determinants: int = 4  # determinants summed (FermiNet)
    hidden_one: int = 32  # one-electron stream width
    hidden_two: int = 8  # two-electron stream width
    n_layers: int = 3  # interaction layers
    envelope_softening: float = 1.0  # bohr; smooths envelopes at the nuclei
    nucleus_range: float = 1.0  # initial range of the e–n cusp term, bohr
    electron_range: float = 1.0  # initial range of the e–e cusp term, bohr


@dataclass
class SamplerConfig:
    """Metropolis–Hastings sampling."""

    n_walkers: int = 256  # walkers sampled in parallel
    initial_step: float = 0.2  # bohr, adapted as the run goes
    target_acceptance: float = 0.55  # acceptance the step size is adapted to
    burn_in: int = 200  # moves before optimisation starts
    decorrelation: int = 10  # moves between optimisation steps
    drift: bool = False  # Langevin moves along grad log|psi| (Metropolis-adjusted)


@dataclass
class PretrainConfig:
    """Fitting the orbitals to Hartree–Fock before energy minimisation."""

    steps: int = 200  # 0 skips pretraining (and the need for PySCF)
    basis: str = "cc-pvdz"  # Gaussian basis for Hartree–Fock
    learning_rate: float = 3e-3  # Adam


@dataclass
class OptimizerConfig:
    """Energy minimisation."""

    method: str = "spring"  # 'spring' (natural gradient) or 'adam'
    steps: int = 1000  # optimisation steps
    learning_rate: float = 0.05  # initial learning rate
    learning_rate_decay: float = 1000.0  # lr = lr0 / (1 + step / decay)
    damping: float = 1e-3  # SPRING: lambda of the walker-space system
    momentum: float = 0.9  # SPRING: mu; 0 is minSR
    max_norm: float = 1e-3  # SPRING: bound on a step's Fisher norm
    clip_width: float = 5.0  # clip E_L to median +- width * mean abs deviation
    laplacian: str = "loop"  # 'loop' (measured faster on CPU) or 'forward'


@dataclass
class EvaluateConfig:
    """Measuring the energy of the optimised wavefunction."""

    steps: int = 500  # sampling steps whose local energies are averaged
    decorrelation: int = 10  # moves between measurements


@dataclass
class ReferenceConfig:
    """Quantum-chemistry references computed with PySCF."""

    basis: str = "cc-pvtz"  # basis for HF, CCSD(T) and FCI
    fci: Any = "auto"  # true, false or 'auto' (when the space is small)


@dataclass
class VMCConfig:
    """A whole ``dpl vmc`` input."""

    system: SystemConfig = field(default_factory=SystemConfig)
    ansatz: AnsatzConfig = field(default_factory=AnsatzConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    seed: int = 0  # seeds parameters and sampling; same seed, same run
    checkpoint_every: int = 100  # steps between checkpoints
    max_memory_gb: float | None = None  # default: 80% of the machine's memory
    threads: int = 1  # torch intra-op threads
    device: str = "cpu"  # 'cpu', 'cuda' or 'cuda:N'


_CHOICES = {
    ("ansatz", "kind"): ("ferminet", "slater_jastrow"),
    ("optimizer", "method"): ("spring", "adam"),
    ("optimizer", "laplacian"): ("loop", "forward"),
}


def _build(cls: type, data: Any, where: str, section: str = "") -> Any:
    """``cls`` from ``data``; messages read ``WHERE: section.key: ...``."""
    at = f"{where}: {section}" if section else where
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{at}: expected a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(fields)
            raise UserError(f"{at}: unknown key '{key}'{hint} (known: {known})")
        default = getattr(cls(), key)
        name = f"{section}.{key}" if section else key
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, where, name)
            continue
        if fields[key].type == "Any":
            kwargs[key] = value
            continue
        if default is None and fields[key].type == "float | None":
            default = 0.0  # an optional number: a number when given
            if value is None:
                kwargs[key] = None
                continue
        kwargs[key] = _check_type(default, value, f"{where}: {name}")
    return cls(**kwargs)


def _check_type(default: Any, value: Any, key: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{key}: expected true or false, got {value!r}")
    elif isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{key}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise UserError(f"{key}: expected a finite number, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise UserError(f"{key}: expected a string, got {value!r}")
    return value


def config_from_dict(data: Any, where: str = "input") -> VMCConfig:
    """Validate a parsed input and fill in defaults."""
    if data is None:
        raise UserError(f"{where}: the input is empty; see wavefunctions/*/input.yaml")
    config = _build(VMCConfig, data, where)
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(config, section), key)
        if value not in choices:
            raise UserError(
                f"{where}: {section}.{key} is {value!r}; "
                f"use one of {', '.join(choices)}"
            )
    if config.reference.fci not in (True, False, "auto"):
        raise UserError(
            f"{where}: reference.fci is {config.reference.fci!r}; use true, false "
            "or auto"
        )
    positive = [
        ("sampler", "n_walkers"),
        ("sampler", "decorrelation"),
        ("evaluate", "decorrelation"),
        ("ansatz", "n_determinants"),
        ("ansatz", "hidden_one"),
        ("ansatz", "hidden_two"),
        ("checkpoint_every",),
    ]
    for path in positive:
        value = config
        for part in path:
            value = getattr(value, part)
        if value < 1:
            name = ".".join(path)
            raise UserError(f"{where}: {name} must be at least 1, got {value}")
    for section, key in [
        ("optimizer", "steps"),
        ("pretrain", "steps"),
        ("sampler", "burn_in"),
    ]:
        if getattr(getattr(config, section), key) < 0:
            raise UserError(f"{where}: {section}.{key} must not be negative")
    for key, value, low, high, what in _ranges(config):
        if not low <= value <= high:
            raise UserError(f"{where}: {key} is {value}; it must be {what}")
    return config


def _ranges(config: VMCConfig) -> list[tuple[str, Any, float, float, str]]:
    """(key, value, lowest, highest, wording) of every bounded setting."""
    tiny, huge = 1e-300, math.inf
    return [
        ("sampler.n_walkers", config.sampler.n_walkers, 2, huge, "at least 2"),
        ("evaluate.steps", config.evaluate.steps, 2, huge,
         "at least 2 (the error bar needs a series)"),
        ("ansatz.n_layers", config.ansatz.n_layers, 1, huge, "at least 1"),
        ("threads", config.threads, 1, huge, "at least 1"),
        ("seed", config.seed, 0, 2**63 - 1, "between 0 and 2^63 - 1"),
        ("sampler.initial_step", config.sampler.initial_step, tiny, huge,
         "positive (bohr)"),
        ("sampler.target_acceptance", config.sampler.target_acceptance, 0.05, 0.95,
         "between 0.05 and 0.95"),
        ("optimizer.learning_rate", config.optimizer.learning_rate, tiny, huge,
         "positive"),
        ("optimizer.learning_rate_decay", config.optimizer.learning_rate_decay,
         tiny, huge, "positive (steps)"),
        ("optimizer.damping", config.optimizer.damping, 0.0, huge, "not negative"),
        ("optimizer.momentum", config.optimizer.momentum, 0.0, 0.999999,
         "in [0, 1)"),
        ("optimizer.max_norm", config.optimizer.max_norm, tiny, huge, "positive"),
        ("optimizer.clip_width", config.optimizer.clip_width, tiny, huge,
         "positive"),
        ("pretrain.learning_rate", config.pretrain.learning_rate, tiny, huge,
         "positive"),
        ("ansatz.envelope_softening", config.ansatz.envelope_softening, 0.0, huge,
         "not negative (bohr)"),
        ("ansatz.nucleus_range", config.ansatz.nucleus_range, tiny, huge,
         "positive (bohr)"),
        ("ansatz.electron_range", config.ansatz.electron_range, tiny, huge,
         "positive (bohr)"),
        ("max_memory_gb",
         1.0 if config.max_memory_gb is None else config.max_memory_gb, tiny, huge,
         "positive (GB)"),
    ]


def load_config(path: str | Path) -> VMCConfig:
    """Read and validate a ``dpl vmc`` YAML input file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such input file")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text (YAML) file") from None
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())
        raise UserError(f"{path}: not valid YAML ({reason})") from None
    return config_from_dict(data, str(path))


def config_to_dict(config: VMCConfig) -> dict:
    """Plain dictionary of a configuration (for checkpoints and results)."""
    return dataclasses.asdict(config)
