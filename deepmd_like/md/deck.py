"""Simulation decks: the YAML input of ``dpl md``, as typed dataclasses.

A deck says what to simulate (``structure``, ``potential``), how
(``timestep_fs``, ``stages`` with thermostats and barostats), what to write
(``reporters``) and what to compute at the end (``analysis``)::

    structure:
      lattice: {kind: fcc, symbol: Ar, density_g_cm3: 1.374, repeat: [6, 6, 6]}
    potential:
      lennard_jones: {epsilon_K: 120.0, sigma_A: 3.4, cutoff_A: 7.65}
    timestep_fs: 4.0
    initial_temperature_K: 94.4
    seed: 1
    stages:
      - {name: nvt, steps: 2000, thermostat: langevin, temperature_K: 94.4}
      - {name: nve, steps: 5000}
    reporters:
      thermo: {interval: 20}
      trajectory: {interval: 20, format: h5}
    analysis:
      rdf: {pairs: [[Ar, Ar]]}
      msd: {}

A deck with a single stage may put ``steps``, ``thermostat``,
``temperature_K`` (and the barostat keys) at the top level instead of a
``stages`` list. Relative file names are resolved against the deck's folder.

Every section loads into a dataclass below; its fields are the one place
where defaults live. An unknown key is an error that names its path in the
deck and suggests the nearest known key; values are checked for type and
range when the deck is loaded, and files (structure, models) are opened by
:func:`prepare` before anything is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import yaml

from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)

__all__ = [
    "AnalysisSection",
    "CheckpointReporterConfig",
    "Deck",
    "LatticeConfig",
    "LennardJonesConfig",
    "PotentialConfig",
    "ReportersConfig",
    "StageConfig",
    "StructureConfig",
    "ThermoReporterConfig",
    "TrajectoryReporterConfig",
    "deck_from_dict",
    "load_deck",
]

THERMOSTATS = ("none", "langevin", "bussi", "nose_hoover_chain")
BAROSTATS = ("none", "stochastic_cell_rescaling")
LATTICES = ("fcc", "bcc", "sc", "hcp", "diamond")
SMOOTHINGS = ("force_shift", "energy_shift", "none")
TRAJECTORY_FORMATS = ("h5", "extxyz")
DTYPES = ("float64", "float32")


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclass
class LatticeConfig:
    """A crystal built with ``ase.build.bulk`` and repeated."""

    # Crystal structure: fcc, bcc, sc, hcp or diamond.
    kind: str = "fcc"
    # Chemical symbol of the atoms.
    symbol: str = "Ar"
    # Cubic lattice constant, Å (give this or density_g_cm3).
    a_A: Union[float, None] = None
    # Mass density, g/cm³; sets the lattice constant (give this or a_A).
    density_g_cm3: Union[float, None] = None
    # Repetitions of the cubic cell along a, b, c.
    repeat: list[int] = field(default_factory=lambda: [1, 1, 1])

    def validate(self, path: str) -> None:
        _check_choice(self.kind, LATTICES, f"{path}.kind")
        from ase.data import atomic_numbers

        if self.symbol not in atomic_numbers:
            raise UserError(f"{path}.symbol: unknown element {self.symbol!r}")
        if (self.a_A is None) == (self.density_g_cm3 is None):
            raise UserError(f"{path}: give exactly one of a_A and density_g_cm3")
        for name in ("a_A", "density_g_cm3"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{path}.{name} must be positive, got {value}")
        _check_repeat(self.repeat, f"{path}.repeat")


@dataclass
class StructureConfig:
    """The starting structure: a file ASE reads, or a generated lattice."""

    # A structure file in any format ASE reads (relative to the deck).
    file: Union[str, None] = None
    # Which frame of a multi-frame file (ASE index; -1 = the last).
    index: int = -1
    # A generated crystal instead of a file.
    lattice: Union[LatticeConfig, None] = None
    # Repetitions of the structure along a, b, c.
    repeat: list[int] = field(default_factory=lambda: [1, 1, 1])
    # Two atoms closer than this at the start are an error, Å.
    min_distance_A: float = 0.5

    def validate(self, path: str) -> None:
        if (self.file is None) == (self.lattice is None):
            raise UserError(f"{path}: give exactly one of file and lattice")
        if self.lattice is not None:
            self.lattice.validate(f"{path}.lattice")
        _check_repeat(self.repeat, f"{path}.repeat")
        if self.min_distance_A < 0:
            raise UserError(
                f"{path}.min_distance_A must be >= 0, got {self.min_distance_A}"
            )


@dataclass
class LennardJonesConfig:
    """A Lennard-Jones pair potential, the same for every pair of atoms."""

    # Well depth, eV (give this or epsilon_K).
    epsilon_eV: Union[float, None] = None
    # Well depth over Boltzmann's constant, K (give this or epsilon_eV).
    epsilon_K: Union[float, None] = None
    # Distance where the unshifted potential crosses zero, Å.
    sigma_A: float = 3.4
    # Cutoff radius, Å.
    cutoff_A: float = 8.5
    # force_shift (continuous forces), energy_shift or none.
    smoothing: str = "force_shift"

    def validate(self, path: str) -> None:
        if (self.epsilon_eV is None) == (self.epsilon_K is None):
            raise UserError(f"{path}: give exactly one of epsilon_eV and epsilon_K")
        for name in ("epsilon_eV", "epsilon_K", "sigma_A", "cutoff_A"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{path}.{name} must be positive, got {value}")
        _check_choice(self.smoothing, SMOOTHINGS, f"{path}.smoothing")

    @property
    def epsilon(self) -> float:
        """Well depth in eV."""
        from deepmd_like.units import KB_EV_PER_K

        if self.epsilon_eV is not None:
            return float(self.epsilon_eV)
        return float(self.epsilon_K) * KB_EV_PER_K


@dataclass
class PotentialConfig:
    """The potential: model file(s) or a Lennard-Jones pair potential."""

    # A model file (dpl freeze output or a training checkpoint), or a list of
    # them: an ensemble whose mean drives the dynamics and whose spread is
    # reported as the model deviation.
    model: Union[str, list[str], None] = None
    # Lennard-Jones parameters instead of a model.
    lennard_jones: Union[LennardJonesConfig, None] = None

    def validate(self, path: str) -> None:
        if (self.model is None) == (self.lennard_jones is None):
            raise UserError(f"{path}: give exactly one of model and lennard_jones")
        if isinstance(self.model, list) and not self.model:
            raise UserError(f"{path}.model: the list of model files is empty")
        if self.lennard_jones is not None:
            self.lennard_jones.validate(f"{path}.lennard_jones")

    @property
    def model_files(self) -> list[str]:
        """The model file names, as a list (empty for Lennard-Jones)."""
        if self.model is None:
            return []
        return [self.model] if isinstance(self.model, str) else list(self.model)


@dataclass
class StageConfig:
    """A run segment with one ensemble: NVE, NVT or NPT."""

    # Name of the stage, used in file names and logs.
    name: str = ""
    # Number of MD steps.
    steps: int = 0
    # Thermostat: none (NVE), langevin, bussi or nose_hoover_chain.
    thermostat: str = "none"
    # Thermostat target temperature, K (needs a thermostat).
    temperature_K: Union[float, None] = None
    # Thermostat relaxation time, fs (Langevin friction = 1 / time).
    thermostat_time_fs: float = 100.0
    # Length of a Nosé–Hoover chain.
    chain_length: int = 3
    # Barostat: none or stochastic_cell_rescaling (needs a thermostat).
    barostat: str = "none"
    # Barostat target pressure, GPa.
    pressure_GPa: Union[float, None] = None
    # Barostat relaxation time, fs.
    barostat_time_fs: float = 1000.0
    # Isothermal compressibility guess for the barostat, 1/GPa.
    compressibility_per_GPa: float = 0.5
    # Time step of this stage, fs (None = the deck's timestep_fs).
    timestep_fs: Union[float, None] = None

    def validate(self, path: str) -> None:
        def k(name: str) -> str:
            return _join(path, name)

        if self.steps < 0:
            raise UserError(f"{k('steps')} must be >= 0, got {self.steps}")
        _check_choice(self.thermostat, THERMOSTATS, k("thermostat"))
        _check_choice(self.barostat, BAROSTATS, k("barostat"))
        if self.thermostat == "none" and self.temperature_K is not None:
            raise UserError(
                f"{k('temperature_K')} is set but there is no thermostat; add "
                "thermostat: langevin (or bussi, nose_hoover_chain), or use "
                "initial_temperature_K for starting velocities"
            )
        if self.thermostat != "none":
            if self.temperature_K is None:
                raise UserError(
                    f"{k('thermostat')} {self.thermostat} needs temperature_K"
                )
            if not self.temperature_K > 0:
                raise UserError(
                    f"{k('temperature_K')} must be positive, got {self.temperature_K}"
                )
            if not self.thermostat_time_fs > 0:
                raise UserError(
                    f"{k('thermostat_time_fs')} must be positive, got "
                    f"{self.thermostat_time_fs}"
                )
        if self.chain_length < 1:
            raise UserError(f"{k('chain_length')} must be >= 1")
        if self.barostat != "none":
            if self.thermostat == "none":
                raise UserError(
                    f"{k('barostat')} {self.barostat} needs a thermostat (NPT)"
                )
            if self.thermostat != "bussi":
                raise UserError(
                    f"{k('barostat')} {self.barostat} runs with the Bussi "
                    f"thermostat; set thermostat: bussi"
                )
            if self.pressure_GPa is None:
                raise UserError(f"{k('barostat')} {self.barostat} needs pressure_GPa")
            if not self.barostat_time_fs > 0 or not self.compressibility_per_GPa > 0:
                raise UserError(
                    f"{k('barostat_time_fs')} and compressibility_per_GPa must be "
                    "positive"
                )
        elif self.pressure_GPa is not None:
            raise UserError(
                f"{k('pressure_GPa')} is set but there is no barostat; add "
                "barostat: stochastic_cell_rescaling"
            )
        if self.timestep_fs is not None:
            _check_timestep(self.timestep_fs, k("timestep_fs"))

    @property
    def ensemble(self) -> str:
        """NVE, NVT or NPT."""
        if self.barostat != "none":
            return "NPT"
        return "NVE" if self.thermostat == "none" else "NVT"


@dataclass
class ThermoReporterConfig:
    """The thermodynamic log, a CSV file with units in its header."""

    # Steps between rows (0 = off).
    interval: int = 10
    # File name inside the output folder.
    file: str = "thermo.csv"


@dataclass
class TrajectoryReporterConfig:
    """Frames written during the run."""

    # Steps between frames (0 = off).
    interval: int = 100
    # h5 (the project's dataset format, one system per stage) or extxyz.
    format: str = "h5"
    # File name inside the output folder (default trajectory.h5 / .extxyz).
    file: Union[str, None] = None
    # Also store velocities (Å/fs), needed for the velocity autocorrelation.
    velocities: bool = True
    # Also store forces and potential energies as labels.
    forces: bool = False
    # Stages whose frames are stored (None = every stage).
    stages: Union[list[str], None] = None

    @property
    def path_name(self) -> str:
        """The trajectory's file name."""
        return self.file or f"trajectory.{self.format}"


@dataclass
class CheckpointReporterConfig:
    """Restart files, written atomically."""

    # Steps between checkpoints (0 = only at the end of each stage).
    interval: int = 1000
    # File name inside the output folder.
    file: str = "checkpoint.pt"


@dataclass
class ReportersConfig:
    """What a run writes."""

    # Thermodynamic log.
    thermo: ThermoReporterConfig = field(default_factory=ThermoReporterConfig)
    # Trajectory frames.
    trajectory: TrajectoryReporterConfig = field(
        default_factory=TrajectoryReporterConfig
    )
    # Checkpoints for --restart.
    checkpoint: CheckpointReporterConfig = field(
        default_factory=CheckpointReporterConfig
    )
    # A progress bar with the simulation speed in ns/day.
    progress: bool = True

    def validate(self, path: str) -> None:
        for name in ("thermo", "trajectory", "checkpoint"):
            interval = getattr(self, name).interval
            if interval < 0:
                raise UserError(f"{path}.{name}.interval must be >= 0, got {interval}")
        _check_choice(
            self.trajectory.format, TRAJECTORY_FORMATS, f"{path}.trajectory.format"
        )


@dataclass
class RDFConfig:
    """Radial distribution functions."""

    # Element pairs, e.g. [[O, O], [O, H]].
    pairs: list[list[str]] = field(default_factory=list)
    # Largest distance, Å (None = just under half the box).
    r_max_A: Union[float, None] = None
    # Number of bins.
    bins: int = 200
    # At most this many frames (evenly spaced) enter g(r).
    max_frames: int = 200


@dataclass
class MSDConfig:
    """Mean-squared displacement and the Einstein diffusion coefficient."""

    # Start of the linear fit, fs (None = a fifth of the longest lag).
    fit_start_fs: Union[float, None] = None
    # End of the linear fit, fs (None = the longest lag).
    fit_end_fs: Union[float, None] = None


@dataclass
class VACFConfig:
    """Velocity autocorrelation and the Green–Kubo diffusion coefficient.

    No options: the longest lag is the analysis section's ``max_lag_fs``.
    """


@dataclass
class AnalysisSection:
    """Observables computed from the trajectory when the run ends."""

    # Stage whose frames are analysed (None = the last stage).
    stage: Union[str, None] = None
    # Time discarded at the start of that stage, fs.
    skip_fs: float = 0.0
    # Longest lag of the MSD and VACF, fs (None = half the analysed time).
    max_lag_fs: Union[float, None] = None
    # Radial distribution functions (None = none).
    rdf: Union[RDFConfig, None] = None
    # Mean-squared displacement (None = none).
    msd: Union[MSDConfig, None] = None
    # Velocity autocorrelation (None = none).
    vacf: Union[VACFConfig, None] = None

    def validate(self, path: str) -> None:
        if self.rdf is not None:
            for i, pair in enumerate(self.rdf.pairs):
                if len(pair) != 2:
                    raise UserError(
                        f"{path}.rdf.pairs[{i}] must be two element symbols, got "
                        f"{pair!r}"
                    )
            if self.rdf.bins < 1:
                raise UserError(f"{path}.rdf.bins must be >= 1")
            if self.rdf.r_max_A is not None and not self.rdf.r_max_A > 0:
                raise UserError(f"{path}.rdf.r_max_A must be positive")
        if self.skip_fs < 0:
            raise UserError(f"{path}.skip_fs must be >= 0")

    @property
    def wanted(self) -> bool:
        """True if anything is to be computed."""
        return any(x is not None for x in (self.rdf, self.msd, self.vacf))


@dataclass
class Deck:
    """A whole simulation deck."""

    # Starting structure.
    structure: StructureConfig = field(default_factory=StructureConfig)
    # The potential.
    potential: PotentialConfig = field(default_factory=PotentialConfig)
    # Time step, fs.
    timestep_fs: float = 1.0
    # Maxwell–Boltzmann starting velocities at this temperature, K
    # (None = the structure's own velocities, zero if it has none).
    initial_temperature_K: Union[float, None] = None
    # Seed of every random number in the run (velocities, thermostat noise).
    seed: int = 0
    # cpu, cuda, cuda:1, ...
    device: str = "cpu"
    # float64 or float32.
    dtype: str = "float64"
    # Verlet-list skin, Å: the list is rebuilt when an atom moved half of it.
    neighbor_skin_A: float = 1.0
    # Remove the centre-of-mass velocity (at the start and with thermostats).
    remove_com_motion: bool = True
    # Run segments, in order.
    stages: list[StageConfig] = field(default_factory=list)
    # Single-stage shorthand: the stage keys at the top level.
    steps: Union[int, None] = None
    thermostat: Union[str, None] = None
    temperature_K: Union[float, None] = None
    thermostat_time_fs: Union[float, None] = None
    barostat: Union[str, None] = None
    pressure_GPa: Union[float, None] = None
    # What the run writes.
    reporters: ReportersConfig = field(default_factory=ReportersConfig)
    # Observables computed at the end.
    analysis: AnalysisSection = field(default_factory=AnalysisSection)
    # The folder relative file names are resolved against (set by the loader).
    base_dir: str = "."
    # The deck file (set by the loader; for messages).
    source: str = "<deck>"

    def validate(self) -> None:
        where = self.source
        self.structure.validate(f"{where}: structure")
        self.potential.validate(f"{where}: potential")
        _check_timestep(self.timestep_fs, f"{where}: timestep_fs")
        if self.initial_temperature_K is not None and self.initial_temperature_K < 0:
            raise UserError(
                f"{where}: initial_temperature_K must be >= 0, got "
                f"{self.initial_temperature_K}"
            )
        _check_choice(self.dtype, DTYPES, f"{where}: dtype")
        if not self.neighbor_skin_A >= 0:
            raise UserError(f"{where}: neighbor_skin_A must be >= 0")
        self._fold_shorthand()
        names = set()
        for i, stage in enumerate(self.stages):
            if not stage.name:
                stage.name = f"stage{i}"
            if stage.name in names:
                raise UserError(f"{where}: two stages are named {stage.name!r}")
            names.add(stage.name)
            shorthand = getattr(self, "_shorthand", False)
            stage.validate(f"{where}:" if shorthand else f"{where}: stages[{i}]")
        self.reporters.validate(f"{where}: reporters")
        self.analysis.validate(f"{where}: analysis")
        if self.analysis.stage is not None and self.analysis.stage not in names:
            raise UserError(
                f"{where}: analysis.stage {self.analysis.stage!r} is not a stage; "
                f"stages: {', '.join(sorted(names))}"
            )
        recorded = self.reporters.trajectory.stages
        for name in recorded or []:
            if name not in names:
                raise UserError(
                    f"{where}: reporters.trajectory.stages names {name!r}, which is "
                    f"not a stage; stages: {', '.join(sorted(names))}"
                )
        if (
            self.analysis.wanted
            and recorded is not None
            and self.analysis_stage().name not in recorded
        ):
            raise UserError(
                f"{where}: the analysis reads stage {self.analysis_stage().name!r} "
                "but reporters.trajectory.stages does not record it"
            )
        if self.analysis.wanted and self.reporters.trajectory.interval == 0:
            raise UserError(
                f"{where}: analysis needs a trajectory; set "
                "reporters.trajectory.interval > 0"
            )

    def _fold_shorthand(self) -> None:
        shorthand = {
            key: getattr(self, key)
            for key in (
                "steps",
                "thermostat",
                "temperature_K",
                "thermostat_time_fs",
                "barostat",
                "pressure_GPa",
            )
            if getattr(self, key) is not None
        }
        if self.stages and shorthand:
            raise UserError(
                f"{self.source}: {', '.join(shorthand)} given both at the top level "
                "and with stages; put them inside each stage"
            )
        if not self.stages:
            if "steps" not in shorthand:
                raise UserError(
                    f"{self.source}: no steps; give steps (or a list of stages)"
                )
            self.stages = [StageConfig(name="run", **shorthand)]
            for key in shorthand:
                setattr(self, key, None)
            self._shorthand = True

    def stage_timestep(self, stage: StageConfig) -> float:
        """The time step of ``stage``, fs."""
        return self.timestep_fs if stage.timestep_fs is None else stage.timestep_fs

    def resolve(self, name: str) -> Path:
        """A file name from the deck, relative to the deck's folder."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path

    @property
    def total_steps(self) -> int:
        """Steps over all stages."""
        return sum(stage.steps for stage in self.stages)

    def analysis_stage(self) -> StageConfig:
        """The stage the analysis reads."""
        name = self.analysis.stage or self.stages[-1].name
        return next(stage for stage in self.stages if stage.name == name)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_deck(path: str | Path) -> Deck:
    """Read and validate a deck file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"deck file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: cannot parse{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a deck must be a mapping of keys to values")
    return deck_from_dict(data, base_dir=path.parent, source=str(path))


def deck_from_dict(
    data: dict[str, Any], base_dir: str | Path = ".", source: str = "<deck>"
) -> Deck:
    """Build and validate a :class:`Deck` from plain data."""
    for key in ("base_dir", "source"):
        if key in data:
            raise UserError(f"{source}: {key!r} is not a deck key")
    deck = _build(Deck, data, source + ":")
    deck.base_dir = str(base_dir)
    deck.source = source
    deck.validate()
    return deck


def _join(path: str, name: str) -> str:
    """``deck.yaml: a.b`` style key paths."""
    return f"{path} {name}" if path.endswith(":") else f"{path}.{name}"


def _check_choice(value: str, choices: tuple[str, ...], path: str) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(
            f"{path} = {value!r} is not one of {', '.join(choices)}{hint}"
        )


def _check_repeat(repeat: list[int], path: str) -> None:
    if len(repeat) != 3 or any(r < 1 for r in repeat):
        raise UserError(f"{path} must be three integers >= 1, got {repeat}")


def _check_timestep(value: float, path: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{path} must be a positive number of fs, got {value}")
    if value > 20:
        raise UserError(
            f"{path} = {value} fs is far too long for atomistic MD; use a few fs"
        )


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"a list of {_type_name(inner)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}[
        tp
    ]


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, path)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (inner,) = typing.get_args(tp)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_coerce(item, inner, f"{path}[{i}]"))
            except _Mismatch:
                raise UserError(
                    f"{path}[{i}] must be {_type_name(inner)}, got {item!r}"
                ) from None
        return out
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _Mismatch
        return _build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"unsupported deck field type {tp!r}")


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    hidden = ("base_dir", "source")
    names = [f.name for f in dataclasses.fields(cls) if f.name not in hidden]
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise UserError(f"{path} keys must be strings, got {key!r}")
        where = _join(path, key)
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(
                f"unknown key {where.strip()!r}{hint} (known keys: {', '.join(names)})"
            )
        try:
            kwargs[key] = _coerce(value, hints[key], where)
        except _Mismatch:
            raise UserError(
                f"{where.strip()} must be {_type_name(hints[key])}, got {value!r}"
            ) from None
    return cls(**kwargs)


# ---------------------------------------------------------------------------
# Preparing and running
# ---------------------------------------------------------------------------


@dataclass
class Prepared:
    """What a deck needs before it can run, all checked.

    Attributes
    ----------
    atoms : ase.Atoms — the starting structure.
    potential : torch.nn.Module — the potential (an ensemble for several
        models).
    description : str — what the potential is (recorded in trajectories).
    has_velocities : bool — the structure came with velocities.
    """

    atoms: Any
    potential: Any
    description: str
    has_velocities: bool


def _lattice_atoms(config: LatticeConfig):
    from ase.build import bulk
    from ase.data import atomic_masses, atomic_numbers

    atoms_per_cell = {"fcc": 4, "bcc": 2, "sc": 1, "diamond": 8}
    a = config.a_A
    if a is None:
        if config.kind == "hcp":
            raise UserError(
                "structure.lattice: density_g_cm3 is not supported for hcp; give a_A"
            )
        mass_g = atomic_masses[atomic_numbers[config.symbol]] / 6.02214076e23
        volume_cm3 = atoms_per_cell[config.kind] * mass_g / config.density_g_cm3
        a = (volume_cm3 * 1e24) ** (1.0 / 3.0)
    cubic = config.kind != "hcp"
    atoms = bulk(config.symbol, config.kind, a=a, cubic=cubic)
    return atoms.repeat(tuple(config.repeat))


def _read_structure(deck: Deck):
    config = deck.structure
    if config.lattice is not None:
        return _lattice_atoms(config.lattice)
    from ase.io import read

    path = deck.resolve(config.file)
    if not path.is_file():
        raise UserError(f"{deck.source}: structure.file {path} does not exist")
    try:
        atoms = read(path, index=config.index)
    except Exception as err:  # ASE raises many kinds for unreadable files
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UserError(
            f"{deck.source}: structure.file {path}: ASE cannot read it ({reason}); "
            "give a file in a format ASE reads (extxyz, cif, POSCAR, ...)"
        ) from None
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise UserError(f"{deck.source}: structure.file {path} holds no atoms")
    return atoms


def _check_overlaps(atoms, min_distance: float, source: str) -> None:
    from ase.neighborlist import neighbor_list

    if min_distance <= 0 or len(atoms) < 2:
        return
    if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-8:
        raise UserError(
            f"{source}: the structure is periodic but its cell has no volume"
        )
    i, j, d = neighbor_list("ijd", atoms, min_distance, self_interaction=False)
    if len(d):
        k = int(np.argmin(d))
        raise UserError(
            f"{source}: atoms {int(i[k])} and {int(j[k])} "
            f"({atoms.get_chemical_symbols()[int(i[k])]}, "
            f"{atoms.get_chemical_symbols()[int(j[k])]}) overlap at the start, "
            f"{float(d[k]):.3f} Å apart (structure.min_distance_A = {min_distance}); "
            "fix the structure"
        )


def _load_potential(deck: Deck, device, dtype):
    config = deck.potential
    if config.lennard_jones is not None:
        from deepmd_like.md import LennardJones

        lj = config.lennard_jones
        potential = LennardJones(
            epsilon=lj.epsilon, sigma=lj.sigma_A, cutoff=lj.cutoff_A,
            smoothing=lj.smoothing,
        ).to(device=device, dtype=dtype)
        description = (
            f"lennard_jones(epsilon={lj.epsilon:.6g} eV, sigma={lj.sigma_A} Å, "
            f"cutoff={lj.cutoff_A} Å, {lj.smoothing})"
        )
        return potential, description
    from deepmd_like import load_model

    models = []
    for name in config.model_files:
        path = deck.resolve(name)
        if not path.is_file():
            raise UserError(f"{deck.source}: potential.model {path} does not exist")
        try:
            models.append(load_model(path, device=device, dtype=dtype))
        except UserError as err:
            raise UserError(f"{deck.source}: potential.model: {err}") from None
        except Exception as err:
            raise UserError(
                f"{deck.source}: potential.model {path} is not a model file "
                f"({type(err).__name__}: {' '.join(str(err).split())[:200]})"
            ) from None
    names = ", ".join(str(deck.resolve(n)) for n in config.model_files)
    if len(models) == 1:
        return models[0], f"model:{names}"
    from deepmd_like.md.ensemble import EnsemblePotential

    return EnsemblePotential(models), f"ensemble:{names}"


def _check_elements(atoms, potential, source: str) -> None:
    from ase.data import chemical_symbols

    known = getattr(potential, "type_map", None)
    if known is None:
        return
    missing = sorted(
        {chemical_symbols[z] for z in atoms.numbers} - set(known),
        key=lambda s: chemical_symbols.index(s),
    )
    if missing:
        raise UserError(
            f"{source}: the structure has {', '.join(missing)}, which the potential "
            f"does not know (type_map {known}); use a potential trained on them"
        )


def torch_dtype(name: str):
    """The torch dtype of a deck's ``dtype`` string."""
    import torch

    return {"float64": torch.float64, "float32": torch.float32}[name]


def prepare(deck: Deck) -> Prepared:
    """Read the structure, load the potential and check both; write nothing.

    Raises
    ------
    UserError
        A structure file that is missing or that ASE cannot read, atoms that
        overlap, a model file that is missing or unreadable, an element the
        potential does not know, a device that does not exist.
    """
    import torch

    try:
        device = torch.device(deck.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available")
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise UserError(f"{deck.source}: device {deck.device!r}: {err}") from None
    atoms = _read_structure(deck)
    atoms = atoms.repeat(tuple(deck.structure.repeat))
    _check_overlaps(atoms, deck.structure.min_distance_A, deck.source)
    potential, description = _load_potential(deck, device, torch_dtype(deck.dtype))
    _check_elements(atoms, potential, deck.source)
    if deck.analysis.rdf is not None and not atoms.pbc.all():
        raise UserError(
            f"{deck.source}: analysis.rdf needs a structure periodic in all three "
            f"directions (pbc is {atoms.pbc.tolist()})"
        )
    has_velocities = bool(np.any(atoms.get_momenta() != 0))
    return Prepared(atoms, potential, description, has_velocities)


def make_integrator(deck: Deck, stage: StageConfig):
    """The engine integrator for a stage."""
    from deepmd_like.md import (
        Bussi,
        Langevin,
        NoseHooverChain,
        StochasticCellRescaling,
        VelocityVerlet,
    )

    dt = deck.stage_timestep(stage)
    if stage.barostat == "stochastic_cell_rescaling":
        return StochasticCellRescaling(
            dt,
            temperature_K=stage.temperature_K,
            pressure_GPa=stage.pressure_GPa,
            tau_fs=stage.thermostat_time_fs,
            tau_p_fs=stage.barostat_time_fs,
            compressibility_per_GPa=stage.compressibility_per_GPa,
        )
    if stage.thermostat == "none":
        return VelocityVerlet(dt)
    if stage.thermostat == "langevin":
        return Langevin(
            dt, temperature_K=stage.temperature_K,
            friction_per_fs=1.0 / stage.thermostat_time_fs,
        )
    if stage.thermostat == "bussi":
        return Bussi(
            dt, temperature_K=stage.temperature_K, tau_fs=stage.thermostat_time_fs
        )
    return NoseHooverChain(
        dt,
        temperature_K=stage.temperature_K,
        tau_fs=stage.thermostat_time_fs,
        chain_length=stage.chain_length,
    )


@dataclass
class RunSummary:
    """What a finished (or resumed and finished) run reports.

    Attributes
    ----------
    outdir : the output folder.
    steps_run : steps taken by this call (not counting earlier sessions).
    wall_s : wall-clock time of those steps, s.
    ns_per_day : simulated ns per day of wall-clock time.
    force_fraction : share of the wall time spent in force calls.
    final_temperature_K : temperature at the end.
    analysis : headline numbers of the analysis (empty if none).
    """

    outdir: Path
    steps_run: int
    wall_s: float
    ns_per_day: float
    force_fraction: float
    final_temperature_K: float
    analysis: dict


def deck_fingerprint(deck: Deck) -> str:
    """A hash of the deck's settings (not of its formatting)."""
    import hashlib
    import json

    data = dataclasses.asdict(deck)
    data.pop("base_dir", None)
    data.pop("source", None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def output_names(deck: Deck) -> list[str]:
    """Files a run of ``deck`` writes into its output folder."""
    traj = deck.reporters.trajectory.path_name
    return [
        "deck.yaml",
        deck.reporters.thermo.file,
        traj,
        f".{traj}.journal",
        f".{traj}.lock",
        deck.reporters.checkpoint.file,
        "final.extxyz",
        "run.json",
        "analysis.json",
        "rdf.png",
        "msd.png",
        "vacf.png",
    ]


def run_deck(
    deck: Deck,
    outdir: str | Path,
    restart: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
) -> RunSummary:
    """Run a deck into ``outdir``; continue a killed run with ``restart``.

    Everything that can be checked (the deck, the structure, the potential)
    is checked before anything is written. A restarted run continues from
    the latest checkpoint and produces the same trajectory, bit for bit, as
    a run that was never interrupted.

    Parameters
    ----------
    deck : Deck
    outdir : str or Path
        Output folder (created if needed).
    restart : bool
        Continue the run in ``outdir`` from its checkpoint.
    overwrite : bool
        Replace the outputs of an earlier run in ``outdir``.
    progress : bool, optional
        Show a progress bar (default: the deck's ``reporters.progress``).

    Returns
    -------
    RunSummary
    """
    import json
    import time

    from deepmd_like.fileio import atomic_path, atomic_write_text
    from deepmd_like.md import Simulation
    from deepmd_like.md import analysis as md_analysis
    from deepmd_like.md import reporters as rep
    from deepmd_like.md.ensemble import EnsemblePotential
    from deepmd_like.md.state import temperature

    prepared = prepare(deck)
    outdir = Path(outdir)
    config = deck.reporters
    checkpoint_path = outdir / config.checkpoint.file
    fingerprint = deck_fingerprint(deck)
    saved = None
    if restart and not checkpoint_path.exists():
        # Killed before its first checkpoint: start again from the beginning,
        # provided the folder holds a run of this same deck.
        if _copied_deck_fingerprint(outdir, deck) != fingerprint:
            raise UserError(
                f"no checkpoint {checkpoint_path} to restart from; run without "
                "--restart to start"
            )
        logger.warning("%s: no checkpoint yet; starting the run again", outdir)
        restart, overwrite = False, True
    if restart:
        saved = rep.load_checkpoint(checkpoint_path)
        if saved.get("deck") != fingerprint:
            raise UserError(
                f"{deck.source} differs from the deck the run in {outdir} started "
                f"with ({outdir / 'deck.yaml'}); restart with that deck"
            )
    else:
        existing = [n for n in output_names(deck) if (outdir / n).exists()]
        if existing and not overwrite:
            raise UserError(
                f"{outdir} already holds a run ({', '.join(existing[:3])}); pass "
                "--overwrite to replace it, --restart to continue it, or -o for "
                "another folder"
            )
        for name in existing:
            (outdir / name).unlink()

    # Nothing is written before this point.
    outdir.mkdir(parents=True, exist_ok=True)
    if saved is None:
        source = Path(deck.source)
        text = source.read_text(encoding="utf-8") if source.is_file() else ""
        atomic_write_text(outdir / "deck.yaml", text)

    stages = deck.stages
    starts = [0]
    for stage in stages:
        starts.append(starts[-1] + stage.steps)
    stage_index = int(saved["stage"]) if saved is not None else 0
    if stage_index >= len(stages):
        logger.info("%s: the run is already complete", outdir)
        summary = json.loads((outdir / "run.json").read_text())
        return RunSummary(
            outdir=outdir, steps_run=0, wall_s=0.0, ns_per_day=math.nan,
            force_fraction=math.nan,
            final_temperature_K=summary.get("final_temperature_K", math.nan),
            analysis=summary.get("analysis", {}),
        )

    sim = Simulation(
        prepared.atoms,
        prepared.potential,
        make_integrator(deck, stages[stage_index]),
        skin=deck.neighbor_skin_A,
        seed=deck.seed,
        remove_com_motion=deck.remove_com_motion,
        device=deck.device,
        dtype=torch_dtype(deck.dtype),
    )
    if saved is None and deck.initial_temperature_K is not None:
        sim.initialize_velocities(deck.initial_temperature_K)

    ensemble = None
    if isinstance(prepared.potential, EnsemblePotential):
        ensemble = prepared.potential
    periodic = bool(np.all(prepared.atoms.pbc))
    active = []
    thermo = trajectory = None
    if config.thermo.interval > 0:
        thermo = rep.ThermoReporter(
            outdir / config.thermo.file, config.thermo.interval, 1, periodic, ensemble
        )
        active.append(thermo)
    if config.trajectory.interval > 0:
        trajectory = rep.TrajectoryReporter(
            outdir / config.trajectory.path_name,
            config.trajectory.interval,
            fmt=config.trajectory.format,
            velocities=config.trajectory.velocities,
            forces=config.trajectory.forces,
            level_of_theory=prepared.description,
        )
        active.append(trajectory)
    if saved is not None:
        sim.load_state_dict(saved["simulation"])
        positions = saved["reporters"]
        if thermo is not None:
            thermo.restore(positions["thermo"])
        if trajectory is not None:
            trajectory.restore(positions["trajectory"])
    show = config.progress if progress is None else progress
    total = deck.total_steps
    bar = rep.ProgressReporter(
        total, max(1, total // 200), initial_step=sim.state.step, enabled=show
    )
    reporters = active + [bar]

    def checkpoint(next_stage: int) -> None:
        for reporter in active:
            reporter.flush()
        rep.save_checkpoint(
            checkpoint_path,
            {
                "deck": fingerprint,
                "stage": next_stage,
                "simulation": sim.state_dict(),
                "reporters": {
                    "thermo": thermo.position() if thermo else None,
                    "trajectory": trajectory.position() if trajectory else None,
                },
            },
        )

    first_step, first_time = sim.state.step, sim.state.time_fs
    force_seconds0 = sim.force_seconds
    wall0 = time.perf_counter()
    interval = config.checkpoint.interval
    try:
        for index in range(stage_index, len(stages)):
            stage = stages[index]
            if trajectory is not None:
                trajectory.set_stage(stage.name, deck.stage_timestep(stage))
                recorded = config.trajectory.stages
                trajectory.enabled = recorded is None or stage.name in recorded
            logger.info(
                "stage %s: %s, %d steps of %g fs",
                stage.name, stage.ensemble, stage.steps, deck.stage_timestep(stage),
            )
            end = starts[index + 1]
            while sim.state.step < end:
                step = sim.state.step
                target = end
                if interval > 0:
                    target = min(end, (step // interval + 1) * interval)
                sim.run(target - step, reporters)
                if sim.state.step < end:
                    checkpoint(index)
            if index + 1 < len(stages):
                # The next stage's integrator starts here; a checkpoint taken
                # now holds its state, so a restart continues with it.
                sim.integrator = make_integrator(deck, stages[index + 1])
                sim.integrator.setup(sim.state, sim.remove_com_motion)
            checkpoint(index + 1)
    finally:
        bar.finish()
        if trajectory is not None:
            trajectory.finish()
    wall = time.perf_counter() - wall0

    final = sim.to_atoms()
    with atomic_path(outdir / "final.extxyz", suffix=".extxyz") as tmp:
        from ase.io import write

        write(tmp, final, format="extxyz")
    final_temperature = float(temperature(sim.state, sim.dof)[0])

    headline: dict = {}
    if deck.analysis.wanted:
        headline = run_analysis(deck, outdir)

    simulated_ns = (sim.state.time_fs - first_time) * 1e-6
    steps_run = sim.state.step - first_step
    summary = RunSummary(
        outdir=outdir,
        steps_run=steps_run,
        wall_s=wall,
        ns_per_day=simulated_ns / (wall / 86400.0) if wall > 0 else math.nan,
        force_fraction=(
            (sim.force_seconds - force_seconds0) / wall if wall > 0 else math.nan
        ),
        final_temperature_K=final_temperature,
        analysis=headline,
    )
    record = {
        "format": "deepmd_like/md_run_summary",
        "version": 1,
        "steps": sim.state.step,
        "time_fs": sim.state.time_fs,
        "steps_this_session": steps_run,
        "wall_s": wall,
        "steps_per_s": steps_run / wall if wall > 0 else None,
        "ns_per_day": summary.ns_per_day,
        "force_fraction": summary.force_fraction,
        "final_temperature_K": final_temperature,
        "potential": prepared.description,
        "device": str(sim.state.device),
        "dtype": deck.dtype,
        "analysis": headline,
    }
    atomic_write_text(
        outdir / "run.json",
        json.dumps(md_analysis._finite(record), indent=1) + "\n",
    )
    return summary


def _copied_deck_fingerprint(outdir: Path, deck: Deck) -> str | None:
    """Fingerprint of the deck copy in a run folder (None if unreadable)."""
    copy = outdir / "deck.yaml"
    if not copy.is_file():
        return None
    try:
        data = yaml.safe_load(copy.read_text(encoding="utf-8"))
        return deck_fingerprint(deck_from_dict(data, deck.base_dir, str(copy)))
    except (UserError, yaml.YAMLError, TypeError, AttributeError):
        return None


def run_analysis(deck: Deck, outdir: str | Path) -> dict:
    """Analyse the trajectory of a finished run; return the headline numbers."""
    from deepmd_like.md import analysis as md_analysis
    from deepmd_like.md.reporters import read_stage_trajectory

    outdir = Path(outdir)
    section = deck.analysis
    stage = deck.analysis_stage()
    trajectory = read_stage_trajectory(
        outdir / deck.reporters.trajectory.path_name, stage.name
    )
    options = md_analysis.AnalysisOptions(
        rdf_pairs=[tuple(p) for p in section.rdf.pairs] if section.rdf else [],
        rdf_r_max_A=section.rdf.r_max_A if section.rdf else None,
        rdf_bins=section.rdf.bins if section.rdf else 200,
        rdf_max_frames=section.rdf.max_frames if section.rdf else 200,
        msd=section.msd is not None,
        msd_fit_start_fs=section.msd.fit_start_fs if section.msd else None,
        msd_fit_end_fs=section.msd.fit_end_fs if section.msd else None,
        vacf=section.vacf is not None,
        max_lag_fs=section.max_lag_fs,
        skip_fs=section.skip_fs,
    )
    results = md_analysis.analyse(trajectory, options)
    md_analysis.write_results(results, outdir)
    return md_analysis.summary(results)
