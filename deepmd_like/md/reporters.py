"""Reporters: what a simulation writes while it runs.

Each reporter follows the engine's protocol (an ``interval`` and
``report(simulation, observables)``) and keeps what it collects in memory
until :meth:`flush`, which appends it to disk. A run flushes every reporter
just before it writes a checkpoint and records in the checkpoint how much
each file holds (:meth:`position`); a restarted run cuts every file back to
that point (:meth:`restore`), so the files of a killed and restarted run
equal those of an uninterrupted one.

- :class:`ThermoReporter`: CSV log, units in the column names.
- :class:`TrajectoryReporter`: frames in the project's HDF5 dataset format
  (one system per stage, so a trajectory can be labelled later) or extended
  XYZ.
- :class:`ProgressReporter`: a tqdm progress bar with the speed in ns/day.
- :func:`save_checkpoint` / :func:`load_checkpoint`: restart files written
  atomically.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import units as ase_units

from deepmd_like.errors import UserError
from deepmd_like.fileio import atomic_path, fsync_file
from deepmd_like.units import EV_PER_A3_TO_GPA

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "deepmd_like/md_run"
CHECKPOINT_VERSION = 1

# Velocities: ASE's unit (Å per ASE time unit) to Å/fs.
_ASE_VELOCITY_TO_A_PER_FS = ase_units.fs


def _append_bytes(path: Path, data: bytes) -> int:
    """Append ``data`` to ``path``, sync it, and return the new file size."""
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


def _truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (it must be at least that long)."""
    actual = path.stat().st_size if path.exists() else -1
    if actual < size:
        raise UserError(
            f"{path} holds {max(actual, 0)} bytes but the checkpoint recorded "
            f"{size}; the output folder was changed after the checkpoint, so the "
            "run cannot continue exactly; start it again"
        )
    os.truncate(path, size)
    fsync_file(path)


class ThermoReporter:
    """Thermodynamic log: one CSV row per structure every ``interval`` steps.

    Columns: ``step``, ``time_fs``, ``Epot_eV``, ``Ekin_eV``, ``Etot_eV``,
    ``Econserved_eV`` (total energy plus the heat given to a thermostat;
    constant in a correct run), ``T_K``; ``P_GPa`` and the volume ``V_A3``
    for fully periodic systems; ``replica`` second when there are several
    structures; and with an ensemble of models DeePMD-kit's model deviation
    of the forces (``max_devi_f_eV/A``, ``min_devi_f_eV/A``,
    ``avg_devi_f_eV/A``).

    Parameters
    ----------
    path : str or Path
        The CSV file; created with its header if missing.
    interval : int
        Steps between rows.
    n_structures : int
        Number of replicas in the simulation.
    periodic : bool
        Write the pressure column.
    ensemble : object, optional
        A potential with ``last_deviation`` (an
        :class:`~deepmd_like.md.ensemble.EnsemblePotential`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        interval: int,
        n_structures: int = 1,
        periodic: bool = True,
        ensemble: Any = None,
    ) -> None:
        self.path = Path(path)
        self.interval = int(interval)
        self.n_structures = int(n_structures)
        self.periodic = periodic
        self.ensemble = ensemble
        columns = ["step", "time_fs", "Epot_eV", "Ekin_eV", "Etot_eV", "Econserved_eV"]
        columns.append("T_K")
        if periodic:
            columns += ["P_GPa", "V_A3"]
        if ensemble is not None:
            columns += ["max_devi_f_eV/A", "min_devi_f_eV/A", "avg_devi_f_eV/A"]
        if self.n_structures > 1:
            columns.insert(1, "replica")
        self.columns = columns
        self._rows: list[str] = []
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _append_bytes(self.path, (",".join(columns) + "\n").encode())

    def report(self, simulation, observables: dict) -> None:
        """Collect one row per structure."""
        columns = {
            "Epot_eV": observables["potential_energy"],
            "Ekin_eV": observables["kinetic_energy"],
            "Etot_eV": observables["total_energy"],
            "Econserved_eV": observables["conserved_energy"],
            "T_K": observables["temperature"],
        }
        if self.periodic:
            columns["P_GPa"] = observables["pressure"] * EV_PER_A3_TO_GPA
            columns["V_A3"] = observables["volume"]
        if self.ensemble is not None:
            deviation = self.ensemble.last_deviation
            columns["max_devi_f_eV/A"] = deviation["max"]
            columns["min_devi_f_eV/A"] = deviation["min"]
            columns["avg_devi_f_eV/A"] = deviation["mean"]
        values = {k: v.detach().cpu().double().numpy() for k, v in columns.items()}
        for s in range(self.n_structures):
            row = [str(observables["step"])]
            if self.n_structures > 1:
                row.append(str(s))
            row.append(f"{observables['time_fs']:.6f}")
            row += [
                f"{values[name][s]:.10g}" for name in self.columns if name in values
            ]
            self._rows.append(",".join(row))

    def flush(self) -> None:
        """Append the collected rows to the file."""
        if self._rows:
            _append_bytes(self.path, ("\n".join(self._rows) + "\n").encode())
            self._rows = []

    def close(self) -> None:
        """Flush (called by the engine when a run segment ends)."""
        self.flush()

    def position(self) -> dict:
        """How much of the file is written (after :meth:`flush`)."""
        return {"bytes": self.path.stat().st_size}

    def restore(self, position: dict) -> None:
        """Cut the file back to a recorded :meth:`position`."""
        self._rows = []
        _truncate(self.path, int(position["bytes"]))


class TrajectoryReporter:
    """Frames every ``interval`` steps, as an HDF5 dataset or extended XYZ.

    HDF5 frames go to the project's dataset format, one system per stage
    (``<stage>``, or ``<stage>_r<k>`` for replica k), with positions
    (unwrapped, Å), cell and, if asked, velocities (an extra per-frame array
    ``velocities``, Å/fs) and the potential's energies and forces as labels.
    Without ``forces`` the frames carry no energy label (``has_energy``
    False), ready to be labelled by an ab initio code. System attributes
    record the time step, the frame interval, the first step and the
    potential that made the frames (``md_potential``); ``level_of_theory``
    names that potential only when its energies and forces are stored as
    labels (``"unknown"`` otherwise, as for any unlabelled frames).

    Parameters
    ----------
    path : str or Path
        ``*.h5`` or ``*.extxyz`` (the format follows ``fmt``).
    interval : int
        Steps between frames.
    fmt : str
        ``"h5"`` or ``"extxyz"``.
    velocities : bool
        Store velocities.
    forces : bool
        Store the potential's energies and forces.
    level_of_theory : str
        The potential's description.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        interval: int,
        fmt: str = "h5",
        velocities: bool = True,
        forces: bool = False,
        level_of_theory: str = "unknown",
    ) -> None:
        if fmt not in ("h5", "extxyz"):
            raise UserError(f"trajectory format must be h5 or extxyz, got {fmt!r}")
        self.path = Path(path)
        self.interval = int(interval)
        self.fmt = fmt
        self.velocities = velocities
        self.forces = forces
        self.level_of_theory = level_of_theory
        self.stage = "run"
        self.timestep_fs = 1.0
        self._frames: list[dict] = []
        self._writer = None
        # False while a stage whose frames are not wanted runs.
        self.enabled = True
        if fmt == "extxyz" and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _append_bytes(self.path, b"")

    def set_stage(self, name: str, timestep_fs: float) -> None:
        """Start writing the frames of stage ``name``."""
        self.stage = name
        self.timestep_fs = float(timestep_fs)

    def report(self, simulation, observables: dict) -> None:
        """Collect a frame of every structure."""
        if not self.enabled:
            return
        state = simulation.state
        frame = {
            "stage": self.stage,
            "step": int(observables["step"]),
            "time_fs": float(observables["time_fs"]),
            "positions": state.positions.detach().cpu().double().numpy().copy(),
            "cell": state.cell.detach().cpu().double().numpy().copy(),
        }
        if self.velocities:
            velocities = state.momenta / state.masses[:, None]
            frame["velocities"] = (
                velocities.detach().cpu().double().numpy() * _ASE_VELOCITY_TO_A_PER_FS
            )
        if self.forces:
            frame["forces"] = state.forces.detach().cpu().double().numpy().copy()
            frame["energy"] = state.energy.detach().cpu().double().numpy().copy()
        self._frames.append(frame)
        self._structure = (
            state.structure_index.cpu().numpy(),
            state.atomic_numbers.cpu().numpy(),
            state.pbc.cpu().numpy(),
        )

    # -- writing ---------------------------------------------------------

    def _system_names(self, stage: str, n_structures: int) -> list[str]:
        if n_structures == 1:
            return [stage]
        return [f"{stage}_r{k}" for k in range(n_structures)]

    def _open_writer(self):
        if self._writer is None:
            from deepmd_like.data import DatasetWriter

            self._writer = DatasetWriter(self.path)
        return self._writer

    def flush(self) -> None:
        """Append the collected frames to the file."""
        if not self._frames:
            return
        if self.fmt == "h5":
            self._flush_h5()
        else:
            self._flush_extxyz()
        self._frames = []

    def _flush_h5(self) -> None:
        index, numbers, pbc = self._structure
        n_structures = int(index.max()) + 1
        writer = self._open_writer()
        stages = []
        for frame in self._frames:
            if not stages or stages[-1][0] != frame["stage"]:
                stages.append((frame["stage"], []))
            stages[-1][1].append(frame)
        with writer.batch() as h5:
            for stage, frames in stages:
                names = self._system_names(stage, n_structures)
                for s, name in enumerate(names):
                    members = index == s
                    arrays = self._stack(frames, members, s)
                    if name in h5["systems"]:
                        writer.append_frames(
                            name,
                            arrays["positions"],
                            energy=arrays.get("energy"),
                            forces=arrays.get("forces"),
                            cell=arrays["cell"] if pbc[s].any() else None,
                        )
                    else:
                        writer.add_system(
                            name,
                            numbers[members],
                            arrays["positions"],
                            energy=arrays.get("energy"),
                            forces=arrays.get("forces"),
                            cell=arrays["cell"] if pbc[s].any() else None,
                            pbc=pbc[s],
                            attrs={
                                "level_of_theory": (
                                    self.level_of_theory if self.forces else "unknown"
                                ),
                                "md_potential": self.level_of_theory,
                                "source": "dpl md",
                                "md_stage": stage,
                                "md_timestep_fs": self.timestep_fs,
                                "md_frame_interval_steps": self.interval,
                                "md_first_step": frames[0]["step"],
                            },
                        )
                    group = h5["systems"][name]
                    for key in ("velocities", "steps"):
                        if key not in arrays:
                            continue
                        value = arrays[key]
                        if key in group:
                            dset = group[key]
                            old = dset.shape[0]
                            dset.resize(old + value.shape[0], axis=0)
                            dset[old:] = value
                        else:
                            rows = group["positions"].chunks[0]
                            group.create_dataset(
                                key,
                                data=value,
                                maxshape=(None, *value.shape[1:]),
                                chunks=(rows, *value.shape[1:]),
                            )

    @staticmethod
    def _stack(frames: list[dict], members: np.ndarray, s: int) -> dict:
        out = {
            "positions": np.stack([f["positions"][members] for f in frames]),
            "cell": np.stack([f["cell"][s] for f in frames]),
            "steps": np.array([f["step"] for f in frames], dtype=np.int64),
        }
        if "velocities" in frames[0]:
            out["velocities"] = np.stack([f["velocities"][members] for f in frames])
        if "forces" in frames[0]:
            out["forces"] = np.stack([f["forces"][members] for f in frames])
            out["energy"] = np.array([f["energy"][s] for f in frames])
        return out

    def _flush_extxyz(self) -> None:
        import io

        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write

        index, numbers, pbc = self._structure
        n_structures = int(index.max()) + 1
        buffer = io.StringIO()
        images = []
        for frame in self._frames:
            for s in range(n_structures):
                members = index == s
                atoms = Atoms(
                    numbers=numbers[members],
                    positions=frame["positions"][members],
                    cell=frame["cell"][s],
                    pbc=pbc[s],
                )
                atoms.info.update(
                    stage=frame["stage"],
                    step=frame["step"],
                    time_fs=frame["time_fs"],
                    replica=s,
                )
                if "velocities" in frame:
                    atoms.arrays["velocities_A_per_fs"] = frame["velocities"][members]
                if "forces" in frame:
                    atoms.calc = SinglePointCalculator(
                        atoms,
                        energy=float(frame["energy"][s]),
                        forces=frame["forces"][members],
                    )
                images.append(atoms)
        write(buffer, images, format="extxyz")
        _append_bytes(self.path, buffer.getvalue().encode())

    def close(self) -> None:
        """Flush (called by the engine when a run segment ends)."""
        self.flush()

    def finish(self) -> None:
        """Flush and release the file."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- restarts ----------------------------------------------------------

    def position(self) -> dict:
        """How much of the file is written (after :meth:`flush`)."""
        if self.fmt == "extxyz":
            return {"bytes": self.path.stat().st_size}
        if not self.path.exists():
            return {"frames": {}}
        import h5py

        with h5py.File(self.path, "r", locking=False) as h5:
            systems = h5.get("systems", {})
            return {
                "frames": {
                    name: int(systems[name]["positions"].shape[0]) for name in systems
                }
            }

    def restore(self, position: dict) -> None:
        """Cut the file back to a recorded :meth:`position`."""
        self._frames = []
        if self.fmt == "extxyz":
            _truncate(self.path, int(position["bytes"]))
            return
        frames = position["frames"]
        if not self.path.exists():
            if frames:
                raise UserError(
                    f"{self.path} is missing but the checkpoint recorded frames in "
                    "it; the run cannot continue exactly; start it again"
                )
            return
        writer = self._open_writer()
        with writer.batch() as h5:
            systems = h5["systems"]
            for name in list(systems):
                if name not in frames:
                    del systems[name]
                    continue
                keep = frames[name]
                group = systems[name]
                have = group["positions"].shape[0]
                if have < keep:
                    raise UserError(
                        f"{self.path}: system {name!r} holds {have} frames but the "
                        f"checkpoint recorded {keep}; the run cannot continue "
                        "exactly; start it again"
                    )
                for key in list(group):
                    dset = group[key]
                    resizable = dset.maxshape and dset.maxshape[0] is None
                    if dset.ndim >= 1 and dset.shape[0] == have and resizable:
                        dset.resize(keep, axis=0)


class ProgressReporter:
    """A tqdm progress bar showing the simulation speed in ns/day.

    Parameters
    ----------
    total_steps : int
        Steps of the whole run.
    interval : int
        Steps between updates.
    initial_step : int
        Where a restarted run begins.
    enabled : bool
        False for no bar (the speed is still measured).
    """

    def __init__(
        self,
        total_steps: int,
        interval: int,
        initial_step: int = 0,
        enabled: bool = True,
    ) -> None:
        from tqdm.auto import tqdm

        self.interval = max(1, int(interval))
        self.bar = tqdm(
            total=total_steps,
            initial=initial_step,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
        )
        self._last_step = initial_step
        self._last_time_fs: float | None = None
        self._last_wall = time.perf_counter()
        self.ns_per_day = math.nan

    def report(self, simulation, observables: dict) -> None:
        """Advance the bar and refresh the speed."""
        step, time_fs = int(observables["step"]), float(observables["time_fs"])
        now = time.perf_counter()
        if self._last_time_fs is not None and now > self._last_wall:
            simulated_ns = (time_fs - self._last_time_fs) * 1e-6
            self.ns_per_day = simulated_ns / ((now - self._last_wall) / 86400.0)
        self.bar.update(step - self._last_step)
        temperature = float(observables["temperature"].mean())
        self.bar.set_postfix_str(f"{self.ns_per_day:.3g} ns/day, T {temperature:.1f} K")
        self._last_step, self._last_time_fs, self._last_wall = step, time_fs, now

    def close(self) -> None:
        """Keep the bar open across run segments (see :meth:`finish`)."""

    def finish(self) -> None:
        """Close the bar."""
        self.bar.close()


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write a run checkpoint atomically (``torch.save`` of plain data).

    ``payload`` holds the simulation's ``state_dict()``, the stage being run
    and the reporters' positions; format name and version are added.
    """
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(data, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"no checkpoint {path} to restart from; run without --restart to start"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign file
        from deepmd_like.nn.export import _short_reason

        raise UserError(
            f"{path}: not a readable MD checkpoint ({_short_reason(err)})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an MD run checkpoint")
    if int(data.get("version", 0)) > CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint version {data['version']} is newer than this "
            f"deepmd_like reads ({CHECKPOINT_VERSION}); upgrade deepmd_like"
        )
    return data


def read_stage_trajectory(path: str | os.PathLike, stage: str, replica: int = 0):
    """The frames of one stage of a trajectory this module wrote.

    Parameters
    ----------
    path : str or Path
        ``*.h5`` (dataset format) or ``*.extxyz``.
    stage : str
        Stage name.
    replica : int
        Which structure of a batched run.

    Returns
    -------
    deepmd_like.md.analysis.Trajectory
    """
    from deepmd_like.md.analysis import Trajectory

    path = Path(path)
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r", locking=False) as h5:
            systems = h5["systems"]
            name = stage if stage in systems else f"{stage}_r{replica}"
            if name not in systems:
                raise UserError(
                    f"{path}: no frames of stage {stage!r} (systems: "
                    f"{', '.join(systems)})"
                )
            group = systems[name]
            steps = group["steps"][()]
            timestep = float(group.attrs["md_timestep_fs"])
            positions = group["positions"][()]
            n_frames = positions.shape[0]
            cells = group["cell"][()] if "cell" in group else np.zeros((n_frames, 3, 3))
            return Trajectory(
                positions=positions,
                cells=cells,
                pbc=np.asarray(group["pbc"][()], dtype=bool),
                atomic_numbers=group["atomic_numbers"][()],
                frame_interval_fs=_frame_interval(steps, timestep, path, stage),
                velocities=group["velocities"][()] if "velocities" in group else None,
            )
    from ase.io import iread

    frames = [
        atoms
        for atoms in iread(path, index=":", format="extxyz")
        if atoms.info.get("stage") == stage
        and int(atoms.info.get("replica", 0)) == replica
    ]
    if not frames:
        raise UserError(f"{path}: no frames of stage {stage!r}")
    times = np.array([float(a.info["time_fs"]) for a in frames])
    steps = np.array([int(a.info["step"]) for a in frames])
    timestep = (times[1] - times[0]) / (steps[1] - steps[0]) if len(frames) > 1 else 1.0
    velocities = None
    if "velocities_A_per_fs" in frames[0].arrays:
        velocities = np.stack([a.arrays["velocities_A_per_fs"] for a in frames])
    return Trajectory(
        positions=np.stack([a.positions for a in frames]),
        cells=np.stack([a.cell.array for a in frames]),
        pbc=np.asarray(frames[0].pbc, dtype=bool),
        atomic_numbers=frames[0].numbers,
        frame_interval_fs=_frame_interval(steps, timestep, path, stage),
        velocities=velocities,
    )


def _frame_interval(steps: np.ndarray, timestep_fs: float, path, stage) -> float:
    gaps = np.diff(steps)
    if gaps.size == 0:
        raise UserError(f"{path}: stage {stage!r} has only one frame; run longer")
    if not np.all(gaps == gaps[0]):
        raise UserError(f"{path}: frames of stage {stage!r} are not evenly spaced")
    return float(gaps[0]) * timestep_fs
