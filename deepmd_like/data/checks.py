"""Validation report of a dataset file: what is wrong, where, on which atoms.

:func:`check_dataset` reads a file block by block (bounded memory) and
reports, per system and frame:

- shape and dtype problems (a system the reader would refuse);
- non-finite positions, cells or labels (where the frame claims the label);
- two atoms closer than ``min_distance`` (periodic images included);
- energies that are outliers per atom: a least-squares fit of one energy
  per element over all labelled frames, then a robust z-score (median and
  scaled median absolute deviation) of the per-atom residual;
- frames without energy or forces.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from deepmd_like.data.reader import open_h5
from deepmd_like.data.schema import LABEL_MASKS, SYSTEMS, read_system_info
from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)

BLOCK_FRAMES = 1024


@dataclass
class Problem:
    """One finding: what kind, where, and a message for people."""

    kind: str
    system: str
    frame: int | None
    atoms: list[int] = field(default_factory=list)
    message: str = ""

    def __str__(self) -> str:
        where = f"system {self.system}"
        if self.frame is not None:
            where += f" frame {self.frame}"
        if self.atoms:
            where += f" atoms {self.atoms}"
        return f"{self.kind}: {where}: {self.message}"


@dataclass
class CheckReport:
    """All findings for one file, and the counts behind them."""

    path: Path
    n_systems: int = 0
    n_frames: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for problem in self.problems:
            out[problem.kind] = out.get(problem.kind, 0) + 1
        return out

    def format(self, max_lines_per_kind: int = 20) -> str:
        """The report as text, a few lines per kind of problem."""
        lines = [f"{self.path}: {self.n_systems} systems, {self.n_frames} frames"]
        shown: dict[str, int] = {}
        for problem in self.problems:
            shown[problem.kind] = shown.get(problem.kind, 0) + 1
            if shown[problem.kind] <= max_lines_per_kind:
                lines.append(str(problem))
        for kind, count in self.counts().items():
            if count > max_lines_per_kind:
                lines.append(f"{kind}: ... {count - max_lines_per_kind} more not shown")
        if self.ok:
            lines.append("OK: no problems found")
        else:
            summary = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
            lines.append(f"FAILED: {summary}")
        return "\n".join(lines)


def _close_pairs(positions, cell, pbc, min_distance) -> list[tuple[int, int, float]]:
    n = positions.shape[0]
    found = []
    rows = max(1, 4_000_000 // max(1, n))  # bound the (rows, n, 3) temporary
    for start in range(0, n, rows):
        block = positions[start : start + rows]
        delta = positions[None, :, :] - block[:, None, :]
        if cell is not None and np.any(pbc):
            fractional = delta @ np.linalg.inv(cell)
            fractional -= np.where(np.asarray(pbc), np.round(fractional), 0.0)
            delta = fractional @ cell
        distance = np.sqrt((delta**2).sum(-1))
        i, j = np.nonzero(distance < min_distance)
        i = i + start
        keep = i < j
        found.extend(
            (int(a), int(b), float(distance[a - start, b]))
            for a, b in zip(i[keep], j[keep])
        )
    return found


def check_dataset(
    path: str | os.PathLike,
    min_distance: float = 0.1,
    outlier_z: float = 10.0,
) -> CheckReport:
    """Check every system and frame of a dataset; see the module notes.

    Parameters
    ----------
    path : the dataset file.
    min_distance : smallest allowed distance between two atoms, Å.
    outlier_z : robust z-score above which a per-atom energy is an outlier.

    Raises
    ------
    UserError : the file is missing, not HDF5 or not a dataset at all.
    """
    path = Path(path)
    report = CheckReport(path=path)
    energy_rows = _EnergyRows()
    with open_h5(path) as h5:
        systems = h5[SYSTEMS]
        report.n_systems = len(systems)
        for name in systems:
            group = systems[name]
            if not isinstance(group, h5py.Group):
                report.problems.append(Problem("shape", name, None, [], "not a group"))
                continue
            try:
                info = read_system_info(group, str(path))
            except UserError as err:
                message = str(err).split(": ", 2)[-1]
                report.problems.append(Problem("shape", name, None, [], message))
                continue
            report.n_frames += info.n_frames
            _check_system(group, info, min_distance, report, energy_rows)
    _check_energy_outliers(energy_rows, outlier_z, report)
    return report


def _check_system(group, info, min_distance, report, energy_rows) -> None:
    name = info.name
    composition = energy_rows.composition(info.atomic_numbers)
    missing = {"energy": [], "forces": []}
    for start in range(0, info.n_frames, BLOCK_FRAMES):
        stop = min(info.n_frames, start + BLOCK_FRAMES)
        block = {key: group[key][start:stop] for key in
                 ("positions", "cell", "energy", "forces", "virial") if key in group}
        for label, mask in LABEL_MASKS.items():
            if mask in group:
                block[mask] = group[mask][start:stop]
            else:
                block[mask] = np.full(stop - start, label in group)
        for row in range(stop - start):
            frame = start + row
            bad = False
            for key in ("positions", "cell", "energy", "forces", "virial"):
                if key not in block:
                    continue
                mask = LABEL_MASKS.get(key)
                if mask is not None and not block[mask][row]:
                    continue
                value = block[key][row]
                finite = np.isfinite(value)
                if finite.all():
                    continue
                bad = True
                atoms = (
                    np.flatnonzero(~finite.all(axis=-1)).tolist()
                    if key in ("positions", "forces")
                    else []
                )
                report.problems.append(
                    Problem(
                        "non-finite", name, frame, atoms[:20], f"{key} is not finite"
                    )
                )
            if not block["has_energy"][row]:
                missing["energy"].append(frame)
            if not block["has_forces"][row]:
                missing["forces"].append(frame)
            if bad or "positions" not in block:
                continue
            cell = block["cell"][row] if "cell" in block else None
            for a, b, distance in _close_pairs(
                block["positions"][row], cell, info.pbc, min_distance
            ):
                report.problems.append(
                    Problem(
                        "close-atoms", name, frame, [a, b],
                        f"{distance:.4f} Å apart (minimum {min_distance} Å)",
                    )
                )
            if block["has_energy"][row]:
                energy_rows.add(name, frame, composition, float(block["energy"][row]))
    for label, frames in missing.items():
        if frames:
            listed = ", ".join(map(str, frames[:10]))
            listed += " ..." if len(frames) > 10 else ""
            report.problems.append(
                Problem(
                    f"missing-{label}", name, None, [],
                    f"{len(frames)} of {info.n_frames} frames have no {label} "
                    f"(frames {listed})",
                )
            )


class _EnergyRows:
    """Labelled energies with an index into a table of compositions."""

    def __init__(self):
        self.compositions: list[np.ndarray] = []
        self.systems: list[str] = []
        self.frames: list[int] = []
        self.composition_index: list[int] = []
        self.energies: list[float] = []

    def composition(self, atomic_numbers: np.ndarray) -> int:
        counts = np.bincount(atomic_numbers, minlength=119).astype(np.float64)
        self.compositions.append(counts)
        return len(self.compositions) - 1

    def add(self, system: str, frame: int, composition: int, energy: float) -> None:
        self.systems.append(system)
        self.frames.append(frame)
        self.composition_index.append(composition)
        self.energies.append(energy)


def _check_energy_outliers(rows: _EnergyRows, outlier_z, report) -> None:
    if len(rows.energies) < 3:
        return
    table = np.stack(rows.compositions)
    table = table[:, table.any(axis=0)]
    counts = table[np.asarray(rows.composition_index)]
    energy = np.asarray(rows.energies)
    n_atoms = counts.sum(axis=1)
    # One energy per element, fitted by least squares; residual per atom.
    mu, *_ = np.linalg.lstsq(counts, energy, rcond=None)
    residual = (energy - counts @ mu) / n_atoms
    median = np.median(residual)
    spread = 1.4826 * np.median(np.abs(residual - median))
    # A spread below float64 rounding of the energies means "no spread".
    floor = 1e-9 * max(1.0, float(np.abs(energy / n_atoms).max()))
    spread = max(spread, floor)
    score = np.abs(residual - median) / spread
    for index in np.flatnonzero(score > outlier_z):
        report.problems.append(
            Problem(
                "energy-outlier", rows.systems[index], rows.frames[index], [],
                f"energy {energy[index]:.6f} eV is "
                f"{residual[index] - median:+.4f} eV/atom from the per-element fit "
                f"({score[index]:.1f} robust sigma, limit {outlier_z})",
            )
        )
