"""Running a deck: check everything, then simulate, report and analyse.

:func:`prepare` reads the structure and loads the potential of a
:class:`~deepmd_like.md.deck.Deck` and checks both, writing nothing;
:func:`run_deck` runs the stages into an output folder with the thermodynamic
log, the trajectory and atomic checkpoints, continues a killed run exactly
with ``restart=True``, and ends with the analysis the deck asks for.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deepmd_like.errors import UserError
from deepmd_like.md.deck import (
    Deck,
    LatticeConfig,
    StageConfig,
    deck_from_dict,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Prepared",
    "RunSummary",
    "make_integrator",
    "prepare",
    "run_analysis",
    "run_deck",
]


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
    from deepmd_like.devices import resolve_device

    device = resolve_device(deck.device, f"{deck.source}: device")
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
    if deck.analysis.rdf is not None:
        present = set(atoms.get_chemical_symbols())
        for i, pair in enumerate(deck.analysis.rdf.pairs):
            missing = [symbol for symbol in pair if symbol not in present]
            if missing:
                raise UserError(
                    f"{deck.source}: analysis.rdf.pairs[{i}]: the structure has no "
                    f"{missing[0]} atoms (it has {', '.join(sorted(present))})"
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
