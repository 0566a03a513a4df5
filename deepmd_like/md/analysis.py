"""Structural and dynamical analysis of MD trajectories.

Three observables, each a pure function of NumPy arrays so that it can be
checked against known answers:

- :func:`radial_distribution` — partial radial distribution functions
  g_ab(r) of periodic systems, from a neighbour search over lattice images
  (correct for triclinic cells and for ``r_max`` beyond half the box);
- :func:`mean_squared_displacement` and :func:`einstein_diffusion` — the
  mean-squared displacement of unwrapped positions averaged over atoms and
  time origins, and the self-diffusion coefficient from its slope
  (D = slope / 6 in three dimensions);
- :func:`velocity_autocorrelation` and :func:`green_kubo_diffusion` — the
  velocity autocorrelation function and D = (1/3) ∫ C(t) dt.

:func:`analyse_trajectory` runs the ones a deck asks for on a trajectory
file (HDF5 dataset or extended XYZ) and writes ``analysis.json`` and PNG
plots.

Units: Å, fs, Å/fs; diffusion coefficients are reported in cm²/s
(1 Å²/fs = 0.1 cm²/s).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from deepmd_like.errors import UserError
from deepmd_like.fileio import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

# One Å²/fs in cm²/s: 1e-16 cm² / 1e-15 s.
A2_PER_FS_TO_CM2_PER_S = 0.1


# ---------------------------------------------------------------------------
# Radial distribution function
# ---------------------------------------------------------------------------


@dataclass
class RDF:
    """A partial radial distribution function g_ab(r).

    Attributes
    ----------
    pair : the two element symbols (a, b).
    r : (n_bins,) float, Å — bin centres.
    g : (n_bins,) float — g_ab at the bin centres.
    n_frames : number of frames averaged.
    """

    pair: tuple[str, str]
    r: np.ndarray
    g: np.ndarray
    n_frames: int

    def first_peak(self) -> tuple[float, float]:
        """Position (Å) and height of the first peak of g(r).

        The first peak is the highest point between the first bin where g
        exceeds 1 and the first later bin where it falls back below 1; the
        position is refined by a parabola through the highest bin and its two
        neighbours.
        """
        return first_peak(self.r, self.g)

    def as_dict(self) -> dict:
        """A JSON-ready summary with the first peak and the curve."""
        position, height = self.first_peak()
        return {
            "pair": list(self.pair),
            "first_peak_position_A": position,
            "first_peak_height": height,
            "n_frames": self.n_frames,
            "r_A": self.r.tolist(),
            "g": self.g.tolist(),
        }


def first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Position and height of the first peak of a radial distribution.

    Parameters
    ----------
    r : (n_bins,) float, Å
        Bin centres, evenly spaced.
    g : (n_bins,) float
        The distribution.

    Returns
    -------
    position : float, Å
    height : float
        NaN for both if g never exceeds 1.
    """
    above = np.flatnonzero(g > 1.0)
    if above.size == 0:
        return math.nan, math.nan
    start = int(above[0])
    below = np.flatnonzero(g[start:] < 1.0)
    stop = start + int(below[0]) if below.size else len(g)
    top = start + int(np.argmax(g[start:stop]))
    if 0 < top < len(g) - 1:
        # Vertex of the parabola through three evenly spaced points.
        left, mid, right = g[top - 1], g[top], g[top + 1]
        curvature = left - 2.0 * mid + right
        if curvature < 0:
            offset = 0.5 * (left - right) / curvature
            dr = r[1] - r[0]
            position = r[top] + offset * dr
            height = mid - 0.25 * (left - right) * offset
            return float(position), float(height)
    return float(r[top]), float(g[top])


def _symbols_to_numbers(symbols: Sequence[str]) -> list[int]:
    from ase.data import atomic_numbers

    numbers = []
    for symbol in symbols:
        if symbol not in atomic_numbers:
            raise UserError(f"unknown element {symbol!r} in an RDF pair")
        numbers.append(atomic_numbers[symbol])
    return numbers


def radial_distribution(
    positions: np.ndarray,
    cells: np.ndarray,
    atomic_numbers: np.ndarray,
    pair: tuple[str, str],
    r_max: float,
    n_bins: int = 200,
    pbc: Sequence[bool] = (True, True, True),
) -> RDF:
    """Partial radial distribution function of a periodic system.

    g_ab(r) is the density of b atoms at distance r from an a atom divided
    by the mean density of b atoms, averaged over a atoms and frames::

        g_ab(r) = V / (N_a (N_b - δ_ab))
                  · <Σ_{i∈a} Σ_{j∈b, j≠i} δ(r - r_ij)> / (4π r²)

    so an ideal gas gives exactly 1 at every r. Distances run over all
    periodic images (not only the nearest), so ``r_max`` may exceed half of
    the box.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) float, Å
    cells : (n_frames, 3, 3) float, Å — rows are lattice vectors.
    atomic_numbers : (n_atoms,) int
    pair : (str, str)
        Element symbols of the central and neighbour atoms, e.g. ``("O", "O")``.
    r_max : float, Å
        Largest distance.
    n_bins : int
        Number of equal-width bins on [0, r_max].
    pbc : (3,) bool
        Must be all True: g(r) needs a volume.

    Returns
    -------
    RDF
    """
    import torch

    from deepmd_like.nn.neighbors import neighbor_list

    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 2:
        positions = positions[None]
    cells = np.asarray(cells, dtype=float)
    if cells.ndim == 2:
        cells = np.broadcast_to(cells, (positions.shape[0], 3, 3))
    if not all(bool(p) for p in pbc):
        raise UserError(
            "a radial distribution function needs a periodic box in all three "
            f"directions (pbc = {list(map(bool, pbc))})"
        )
    if r_max <= 0 or n_bins < 1:
        raise UserError(f"RDF r_max ({r_max}) and bins ({n_bins}) must be positive")
    numbers = np.asarray(atomic_numbers)
    za, zb = _symbols_to_numbers(pair)
    is_a = numbers == za
    is_b = numbers == zb
    n_a, n_b = int(is_a.sum()), int(is_b.sum())
    n_b_partners = n_b - 1 if za == zb else n_b
    if n_a == 0 or n_b_partners <= 0:
        raise UserError(
            f"RDF pair {pair[0]}-{pair[1]}: the system has {n_a} {pair[0]} and "
            f"{n_b} {pair[1]} atoms; need at least one pair"
        )

    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts = np.zeros(n_bins)
    density_sum = 0.0
    index = torch.zeros(len(numbers), dtype=torch.long)
    periodic = torch.ones(1, 3, dtype=torch.bool)
    for frame in range(positions.shape[0]):
        cell = cells[frame]
        volume = abs(float(np.linalg.det(cell)))
        # Every image within r_max (a full list: each ordered pair i != j).
        x = torch.as_tensor(positions[frame])
        box = torch.tensor(np.array(cell))[None]
        pairs = neighbor_list(x, box, periodic, index, r_max, n_structures=1)
        i, j = pairs.centers.numpy(), pairs.neighbors.numpy()
        shift = pairs.shifts.to(x.dtype) @ box[0]
        vectors = x[pairs.neighbors] - x[pairs.centers] + shift
        d = vectors.norm(dim=1).numpy()
        keep = is_a[i] & is_b[j]
        hist, _ = np.histogram(d[keep], bins=edges)
        counts += hist
        density_sum += n_a * n_b_partners / volume

    shell = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = counts / (density_sum * shell)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return RDF(
        pair=(pair[0], pair[1]), r=centres, g=g, n_frames=int(positions.shape[0])
    )


# ---------------------------------------------------------------------------
# Mean-squared displacement and diffusion
# ---------------------------------------------------------------------------


def unwrap_positions(
    positions: np.ndarray, cells: np.ndarray, pbc: Sequence[bool]
) -> np.ndarray:
    """Remove jumps across periodic boundaries from a sequence of frames.

    Each frame-to-frame displacement is replaced by its minimum image, so
    positions already unwrapped come back unchanged as long as no atom moves
    more than half a box length between stored frames.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) float, Å
    cells : (n_frames, 3, 3) float, Å
    pbc : (3,) bool

    Returns
    -------
    (n_frames, n_atoms, 3) float, Å
    """
    positions = np.asarray(positions, dtype=float)
    periodic = np.asarray(pbc, dtype=bool)
    if positions.shape[0] < 2 or not periodic.any():
        return positions.copy()
    cells = np.asarray(cells, dtype=float)
    steps = np.diff(positions, axis=0)
    for t in range(steps.shape[0]):
        cell = cells[t + 1]
        frac = steps[t] @ np.linalg.inv(cell)
        frac[:, periodic] -= np.round(frac[:, periodic])
        steps[t] = frac @ cell
    out = np.empty_like(positions)
    out[0] = positions[0]
    out[1:] = positions[0] + np.cumsum(steps, axis=0)
    return out


def _autocorrelation_fft(x: np.ndarray) -> np.ndarray:
    """Σ_t x(t)·x(t+k) for every lag k, summed over trailing axes.

    x : (n_frames, ...) — returns (n_frames,) sums over origins, not means.
    """
    n = x.shape[0]
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, n=size, axis=0)
    power = spectrum * np.conj(spectrum)
    corr = np.fft.irfft(power, n=size, axis=0)[:n]
    return corr.reshape(n, -1).sum(axis=1)


@dataclass
class MSD:
    """Mean-squared displacement as a function of lag time.

    Attributes
    ----------
    time_fs : (n_lags,) float, fs
    msd_A2 : (n_lags,) float, Å²
    """

    time_fs: np.ndarray
    msd_A2: np.ndarray


def mean_squared_displacement(
    positions: np.ndarray, frame_interval_fs: float, max_lag: int | None = None
) -> MSD:
    """Mean-squared displacement averaged over atoms and all time origins.

    MSD(k Δt) = < |r_i(t + kΔt) − r_i(t)|² >_{i, t}, computed for every lag at
    once with the FFT (O(n log n) in the number of frames).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) float, Å
        Unwrapped positions (see :func:`unwrap_positions`).
    frame_interval_fs : float, fs
        Time between stored frames.
    max_lag : int, optional
        Largest lag in frames; default half the number of frames, where the
        average still runs over many origins.

    Returns
    -------
    MSD
    """
    x = np.asarray(positions, dtype=float)
    n = x.shape[0]
    if n < 2:
        raise UserError("a mean-squared displacement needs at least two frames")
    if max_lag is None:
        max_lag = max(1, n // 2)
    max_lag = min(max_lag, n - 1)
    n_atoms = x.shape[1]

    # Σ_t |x(t+k) - x(t)|² = Σ_{t<n-k} (|x(t+k)|² + |x(t)|²) - 2 Σ_t x(t)·x(t+k)
    squares = (x**2).sum(axis=(1, 2))
    cross = _autocorrelation_fft(x)
    total = 2.0 * squares.sum()
    msd = np.zeros(n)
    for k in range(n):
        if k:
            total -= squares[k - 1] + squares[n - k]
        msd[k] = (total - 2.0 * cross[k]) / ((n - k) * n_atoms)
    lags = np.arange(max_lag + 1)
    return MSD(time_fs=lags * frame_interval_fs, msd_A2=np.maximum(msd[lags], 0.0))


def einstein_diffusion(
    msd: MSD,
    fit_start_fs: float | None = None,
    fit_end_fs: float | None = None,
    dimensions: int = 3,
) -> float:
    """Self-diffusion coefficient from the slope of the MSD, in cm²/s.

    D = slope / (2 d) from a least-squares line through the MSD between
    ``fit_start_fs`` (default a fifth of the longest lag, past the ballistic
    regime) and ``fit_end_fs`` (default the longest lag).
    """
    t, y = msd.time_fs, msd.msd_A2
    start = t[-1] * 0.2 if fit_start_fs is None else fit_start_fs
    end = t[-1] if fit_end_fs is None else fit_end_fs
    window = (t >= start) & (t <= end)
    if window.sum() < 2:
        raise UserError(
            f"the MSD fit window [{start}, {end}] fs holds fewer than two points; "
            "run longer, store frames more often or widen the window"
        )
    slope = np.polyfit(t[window], y[window], 1)[0]
    return float(slope / (2 * dimensions) * A2_PER_FS_TO_CM2_PER_S)


@dataclass
class VACF:
    """Velocity autocorrelation function C(t) = <v_i(0)·v_i(t)>.

    Attributes
    ----------
    time_fs : (n_lags,) float, fs
    c : (n_lags,) float, Å²/fs²
    """

    time_fs: np.ndarray
    c: np.ndarray

    @property
    def normalised(self) -> np.ndarray:
        """C(t) / C(0)."""
        return self.c / self.c[0]


def velocity_autocorrelation(
    velocities: np.ndarray, frame_interval_fs: float, max_lag: int | None = None
) -> VACF:
    """Velocity autocorrelation averaged over atoms and time origins.

    Parameters
    ----------
    velocities : (n_frames, n_atoms, 3) float, Å/fs
    frame_interval_fs : float, fs
    max_lag : int, optional
        Largest lag in frames; default half the number of frames.

    Returns
    -------
    VACF
    """
    v = np.asarray(velocities, dtype=float)
    n = v.shape[0]
    if n < 2:
        raise UserError("a velocity autocorrelation needs at least two frames")
    if max_lag is None:
        max_lag = max(1, n // 2)
    max_lag = min(max_lag, n - 1)
    sums = _autocorrelation_fft(v)
    lags = np.arange(max_lag + 1)
    c = sums[lags] / ((n - lags) * v.shape[1])
    return VACF(time_fs=lags * frame_interval_fs, c=c)


def green_kubo_diffusion(vacf: VACF, dimensions: int = 3) -> float:
    """Self-diffusion coefficient D = (1/d) ∫ C(t) dt (trapezoid rule), cm²/s."""
    integral = np.trapezoid(vacf.c, vacf.time_fs)
    return float(integral / dimensions * A2_PER_FS_TO_CM2_PER_S)


# ---------------------------------------------------------------------------
# Trajectories, the analysis a deck asks for, plots
# ---------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Frames of one MD stage, as NumPy arrays.

    Attributes
    ----------
    positions : (n_frames, n_atoms, 3) float, Å
    cells : (n_frames, 3, 3) float, Å
    pbc : (3,) bool
    atomic_numbers : (n_atoms,) int
    frame_interval_fs : float, fs — time between frames.
    velocities : (n_frames, n_atoms, 3) float, Å/fs, or None if not stored.
    """

    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    atomic_numbers: np.ndarray
    frame_interval_fs: float
    velocities: np.ndarray | None = None


@dataclass
class AnalysisOptions:
    """What to compute from a trajectory.

    Attributes
    ----------
    rdf_pairs : element pairs for g(r), e.g. ``[("O", "O"), ("O", "H")]``.
    rdf_r_max_A : largest RDF distance, Å; None = just under half the
        smallest plane spacing of the first cell.
    rdf_bins : number of RDF bins.
    rdf_max_frames : at most this many frames, evenly spaced, enter g(r).
    msd : compute the MSD and Einstein diffusion coefficient.
    msd_fit_start_fs / msd_fit_end_fs : MSD fit window, fs (None = default).
    vacf : compute the velocity autocorrelation and its diffusion coefficient.
    max_lag_fs : longest lag for MSD and VACF, fs (None = half the run).
    skip_fs : time discarded at the start of the trajectory, fs.
    """

    rdf_pairs: list[tuple[str, str]] = field(default_factory=list)
    rdf_r_max_A: float | None = None
    rdf_bins: int = 200
    rdf_max_frames: int = 200
    msd: bool = False
    msd_fit_start_fs: float | None = None
    msd_fit_end_fs: float | None = None
    vacf: bool = False
    max_lag_fs: float | None = None
    skip_fs: float = 0.0


def _half_box(cell: np.ndarray) -> float:
    # Distance between opposite faces of the cell is 1/|b_k|.
    reciprocal = np.linalg.inv(cell).T
    return 0.5 / float(np.linalg.norm(reciprocal, axis=1).max())


def analyse(trajectory: Trajectory, options: AnalysisOptions) -> dict:
    """Compute the requested observables; return a JSON-ready dictionary.

    The dictionary keeps the curves (for plots) under ``rdf``, ``msd`` and
    ``vacf``, and the headline numbers (first peaks, diffusion
    coefficients) beside them.
    """
    skip = int(round(options.skip_fs / trajectory.frame_interval_fs))
    if skip >= trajectory.positions.shape[0] - 1:
        raise UserError(
            f"analysis skip_fs = {options.skip_fs} leaves fewer than two of the "
            f"{trajectory.positions.shape[0]} frames; lower skip_fs or run longer"
        )
    positions = trajectory.positions[skip:]
    cells = trajectory.cells[skip:]
    dt = trajectory.frame_interval_fs
    max_lag = None
    if options.max_lag_fs is not None:
        max_lag = max(1, int(round(options.max_lag_fs / dt)))
    out: dict = {
        "n_frames": int(positions.shape[0]),
        "frame_interval_fs": dt,
        "skipped_fs": skip * dt,
    }

    if options.rdf_pairs:
        r_max = options.rdf_r_max_A
        if r_max is None:
            r_max = 0.99 * _half_box(cells[0])
        stride = max(1, math.ceil(positions.shape[0] / max(1, options.rdf_max_frames)))
        out["rdf"] = [
            radial_distribution(
                positions[::stride],
                cells[::stride],
                trajectory.atomic_numbers,
                tuple(pair),
                r_max,
                options.rdf_bins,
                trajectory.pbc,
            ).as_dict()
            for pair in options.rdf_pairs
        ]

    if options.msd:
        unwrapped = unwrap_positions(positions, cells, trajectory.pbc)
        msd = mean_squared_displacement(unwrapped, dt, max_lag)
        out["msd"] = {
            "time_fs": msd.time_fs.tolist(),
            "msd_A2": msd.msd_A2.tolist(),
            "diffusion_cm2_per_s": einstein_diffusion(
                msd, options.msd_fit_start_fs, options.msd_fit_end_fs
            ),
        }

    if options.vacf:
        if trajectory.velocities is None:
            raise UserError(
                "the velocity autocorrelation needs velocities in the trajectory; "
                "store them (trajectory reporter option velocities: true)"
            )
        vacf = velocity_autocorrelation(trajectory.velocities[skip:], dt, max_lag)
        out["vacf"] = {
            "time_fs": vacf.time_fs.tolist(),
            "c_A2_per_fs2": vacf.c.tolist(),
            "diffusion_cm2_per_s": green_kubo_diffusion(vacf),
        }
    return out


def summary(results: dict) -> dict:
    """The headline numbers of :func:`analyse`'s output, without the curves."""
    short: dict = {k: results[k] for k in ("n_frames", "frame_interval_fs")}
    for rdf in results.get("rdf", []):
        name = "-".join(rdf["pair"])
        short[f"rdf_{name}_first_peak_position_A"] = rdf["first_peak_position_A"]
        short[f"rdf_{name}_first_peak_height"] = rdf["first_peak_height"]
    if "msd" in results:
        short["diffusion_msd_cm2_per_s"] = results["msd"]["diffusion_cm2_per_s"]
    if "vacf" in results:
        short["diffusion_vacf_cm2_per_s"] = results["vacf"]["diffusion_cm2_per_s"]
    return short


def write_results(results: dict, folder: str | Path) -> list[Path]:
    """Write ``analysis.json`` and one PNG per observable into ``folder``.

    Returns the paths written. Plots need matplotlib; without it only the
    JSON file is written and a warning is logged.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = {"summary": summary(results), **results}
    json_path = folder / "analysis.json"
    atomic_write_text(json_path, json.dumps(_finite(document), indent=1) + "\n")
    written = [json_path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed; skipping analysis plots")
        return written

    def save(fig, name: str) -> None:
        path = folder / name
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        written.append(path)

    if results.get("rdf"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for rdf in results["rdf"]:
            ax.plot(rdf["r_A"], rdf["g"], label="–".join(rdf["pair"]))
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax.legend()
        fig.tight_layout()
        save(fig, "rdf.png")
    if "msd" in results:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(results["msd"]["time_fs"], results["msd"]["msd_A2"])
        ax.set_xlabel("t (fs)")
        ax.set_ylabel("MSD (Å²)")
        ax.set_title(f"D = {results['msd']['diffusion_cm2_per_s']:.3g} cm²/s")
        fig.tight_layout()
        save(fig, "msd.png")
    if "vacf" in results:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        c = np.asarray(results["vacf"]["c_A2_per_fs2"])
        ax.plot(results["vacf"]["time_fs"], c / c[0])
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xlabel("t (fs)")
        ax.set_ylabel("C(t) / C(0)")
        fig.tight_layout()
        save(fig, "vacf.png")
    return written


def _finite(value):
    """Replace NaN/inf by None so the JSON file is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
