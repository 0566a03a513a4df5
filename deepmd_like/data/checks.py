"""Validation report of a dataset file: what is wrong, where, on which atoms.

:func:`check_dataset` reads a file block by block (bounded memory) and
reports, per system and frame:

- shape and dtype problems (a system the reader would refuse);
- non-finite positions, cells or labels (where the frame claims the label);
- two atoms closer than ``min_distance`` (periodic images included);
- energies that are outliers per atom: a robust z-score (distance from the
  median in scaled median absolute deviations) of the energy per atom among
  frames of the same composition and level of theory, or, for compositions
  with few frames, of the residual of a per-element energy fit;
- frames without energy or forces.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from deepmd_like.data.reader import locked_h5, parse_data_reference
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
    """Pairs (i < j) closer than ``min_distance`` Å, periodic images included."""
    pbc = np.asarray(pbc, dtype=bool)
    periodic = cell is not None and pbc.any()
    if not periodic or np.count_nonzero(cell - np.diag(np.diag(cell))) == 0:
        return _close_pairs_tree(positions, cell if periodic else None, pbc,
                                 min_distance)
    return _close_pairs_dense(positions, cell, pbc, min_distance)


def _close_pairs_tree(positions, cell, pbc, min_distance):
    """k-d tree search for no box or a rectangular one (fast, O(n log n))."""
    from scipy.spatial import cKDTree

    points = positions.copy()
    box = None
    if cell is not None:
        lengths = np.diag(cell).copy()
        box = np.empty(3)
        for axis in range(3):
            if pbc[axis]:
                points[:, axis] = np.mod(points[:, axis], lengths[axis])
                box[axis] = lengths[axis]
            else:
                # An open direction: a box wider than the atoms never wraps.
                low = points[:, axis].min()
                points[:, axis] -= low
                box[axis] = points[:, axis].max() + 2 * min_distance + 1.0
        # Guard against values equal to the box length after rounding.
        points = np.where(points >= box, 0.0, points)
    tree = cKDTree(points, boxsize=box)
    pairs = tree.query_pairs(min_distance, output_type="ndarray")
    found = []
    for i, j in sorted(map(tuple, pairs.tolist())):
        delta = points[j] - points[i]
        if box is not None:
            wrap = np.asarray(pbc) & (np.abs(delta) > box / 2)
            delta = np.where(wrap, delta - np.sign(delta) * box, delta)
        found.append((int(i), int(j), float(np.sqrt((delta**2).sum()))))
    return found


def _close_pairs_dense(positions, cell, pbc, min_distance):
    """All pairs by minimum image in fractional coordinates (any cell)."""
    n = positions.shape[0]
    found = []
    rows = max(1, 1_000_000 // max(1, n))  # bound the (rows, n, 3) temporary
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
    outlier_z: float = 20.0,
) -> CheckReport:
    """Check every system and frame of a dataset; see the module notes.

    Parameters
    ----------
    path : the dataset file.
    min_distance : smallest allowed distance between two atoms, Å.
    outlier_z : robust z-score above which a per-atom energy is an outlier.
        The default, 20, leaves alone genuine clusters of high-energy
        configurations in reactive data (the methane-combustion set has one at
        13-15) and still catches unit or reference mistakes, which score in
        the hundreds or more.

    Raises
    ------
    UserError : the file is missing, not HDF5 or not a dataset at all.
    """
    if min_distance < 0 or not np.isfinite(min_distance):
        raise UserError(
            f"--min-distance must be a distance >= 0 Å, got {min_distance}"
        )
    if not outlier_z > 0 or not np.isfinite(outlier_z):
        raise UserError(f"--outlier-sigma must be a positive number, got {outlier_z}")
    path, selected = parse_data_reference(path)
    report = CheckReport(path=path)
    energy_rows = _EnergyRows()
    with locked_h5(path) as h5:
        systems = h5[SYSTEMS]
        names = list(systems) if selected is None else selected
        missing = [name for name in names if name not in systems]
        if missing:
            raise UserError(
                f"{path}: no system named {', '.join(map(repr, missing))}; the "
                f"file holds {', '.join(systems) or 'no systems'}"
            )
        report.n_systems = len(names)
        for name in names:
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
    if not names:
        report.problems.append(
            Problem("empty", "(none)", None, [], "the file holds no systems")
        )
    _check_energy_outliers(energy_rows, outlier_z, report)
    return report


def _check_system(group, info, min_distance, report, energy_rows) -> None:
    name = info.name
    composition = energy_rows.composition(
        info.atomic_numbers, str(info.attrs.get("level_of_theory", "unknown"))
    )
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
    """Labelled energies, each with the index of its system's composition."""

    def __init__(self):
        self.compositions: list[np.ndarray] = []
        self.theories: list[str] = []
        self.systems: list[str] = []
        self.frames: list[int] = []
        self.composition_index: list[int] = []
        self.energies: list[float] = []

    def composition(self, atomic_numbers: np.ndarray, theory: str) -> int:
        counts = np.bincount(atomic_numbers, minlength=119).astype(np.float64)
        self.compositions.append(counts)
        self.theories.append(theory)
        return len(self.compositions) - 1

    def add(self, system: str, frame: int, composition: int, energy: float) -> None:
        self.systems.append(system)
        self.frames.append(frame)
        self.composition_index.append(composition)
        self.energies.append(energy)


# Groups with fewer frames than this are judged against a per-element fit.
MIN_GROUP = 8


def _robust_scores(residual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """|x - median| in units of the scaled median absolute deviation."""
    median = np.median(residual)
    spread = 1.4826 * np.median(np.abs(residual - median))
    # A spread below float64 rounding of the energies means "no spread".
    spread = max(spread, 1e-9 * max(1.0, float(np.abs(scale).max())))
    return (residual - median) / spread


def _robust_fit_residual(counts: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Residuals of ``energy ~ counts @ mu`` fitted to the inliers only.

    A plain least-squares fit is pulled towards an outlier and hides it;
    refitting without the points far from the previous fit does not.
    """
    n_atoms = counts.sum(axis=1)
    inliers = np.ones(energy.shape, bool)
    for _ in range(5):
        mu, *_ = np.linalg.lstsq(counts[inliers], energy[inliers], rcond=None)
        residual = (energy - counts @ mu) / n_atoms
        median = np.median(residual[inliers])
        spread = 1.4826 * np.median(np.abs(residual[inliers] - median))
        keep = np.abs(residual - median) <= 3 * max(spread, 1e-12)
        if keep.sum() <= counts.shape[1] or np.array_equal(keep, inliers):
            break
        inliers = keep
    return energy - counts @ mu


def _check_energy_outliers(rows: _EnergyRows, outlier_z, report) -> None:
    """Flag per-atom energies far from those of comparable frames.

    Frames are compared within groups of the same composition and level of
    theory (robust z-score of the energy per atom). Frames of small groups
    are compared, per level of theory, with a least-squares fit of one
    energy per element. Energies of different levels of theory or of
    different compositions are never compared directly: their references
    differ.
    """
    if not rows.energies:
        return
    energy = np.asarray(rows.energies)
    index = np.asarray(rows.composition_index)
    table = np.stack(rows.compositions)
    n_atoms = table.sum(axis=1)[index]
    per_atom = energy / n_atoms
    scores = np.zeros_like(energy)
    deviation = np.zeros_like(energy)
    small = np.zeros(energy.shape, bool)
    groups: dict[tuple, list[int]] = {}
    for composition, theory in enumerate(rows.theories):
        key = (theory, table[composition].tobytes())
        groups.setdefault(key, []).append(composition)
    for members in groups.values():
        chosen = np.isin(index, members)
        if chosen.sum() < MIN_GROUP:
            small |= chosen
            continue
        z = _robust_scores(per_atom[chosen], per_atom[chosen])
        scores[chosen] = z
        deviation[chosen] = per_atom[chosen] - np.median(per_atom[chosen])
    for theory in set(rows.theories):
        same = [i for i, t in enumerate(rows.theories) if t == theory]
        of_theory = np.isin(index, same)
        chosen = small & of_theory
        if of_theory.sum() < MIN_GROUP or not chosen.any():
            continue
        counts = table[index[of_theory]][:, table.any(axis=0)]
        residual = _robust_fit_residual(counts, energy[of_theory])
        residual = residual / n_atoms[of_theory]
        z = _robust_scores(residual, per_atom[of_theory])
        position = np.flatnonzero(of_theory)
        keep = chosen[of_theory]
        scores[position[keep]] = z[keep]
        deviation[position[keep]] = (residual - np.median(residual))[keep]
    for i in np.flatnonzero(np.abs(scores) > outlier_z):
        report.problems.append(
            Problem(
                "energy-outlier", rows.systems[i], rows.frames[i], [],
                f"energy {energy[i]:.6f} eV is {deviation[i]:+.4f} eV/atom from "
                f"comparable frames ({abs(scores[i]):.1f} robust sigma, limit "
                f"{outlier_z})",
            )
        )
