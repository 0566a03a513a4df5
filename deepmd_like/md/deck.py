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
range when the deck is loaded; files (structure, models) are opened by
:func:`deepmd_like.md.run.prepare` before anything is written.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from ase.data import chemical_symbols

from deepmd_like import typed_config
from deepmd_like.errors import UserError

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
                for symbol in pair:
                    if symbol not in chemical_symbols[1:]:
                        raise UserError(
                            f"{path}.rdf.pairs[{i}]: {symbol!r} is not an element "
                            "symbol"
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
    # float64 or float32. float32 with several CPU threads is not
    # bit-reproducible from run to run; exact repeats and restarts need
    # float64 or one thread (OMP_NUM_THREADS=1).
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
        if not path.is_absolute():
            path = Path(self.base_dir) / path
        return Path(os.path.normpath(path))

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
    try:
        deck = typed_config.build(
            Deck,
            data,
            "",
            join=typed_config.dotted,
            hidden=("base_dir", "source"),
            none_is_empty=True,
        )
    except UserError as err:
        # Key paths such as 'stages[0].steps' come without the file name.
        text = str(err).removeprefix(": ")
        raise UserError(f"{source}: {text}") from None
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

