"""Errors of a potential on a dataset: what ``dpl test`` reports.

The metric definitions are those of the training log
(:class:`deepmd_like.train.loss.ErrorMetrics`), so a model tested on the
frames its run validated on reports the same numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepmd_like.data import Dataset, collate_structures
from deepmd_like.errors import UserError
from deepmd_like.train.loss import ErrorMetrics

log = logging.getLogger(__name__)


@dataclass
class TestResult:
    """Metrics overall and per system, and the raw values for parity plots."""

    overall: dict[str, float]
    systems: dict[str, dict[str, float]]
    # Per structure: reference and predicted energy per atom, eV/atom.
    energy_per_atom: tuple[np.ndarray, np.ndarray]
    # Labelled force components: reference and predicted, eV/Å.
    forces: tuple[np.ndarray, np.ndarray]
    # Labelled virial components per atom: reference and predicted, eV/atom.
    virial_per_atom: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0))
    )


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    dtype = getattr(model, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float64


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def test_model(
    model: torch.nn.Module, reference: str, batch_size: int = 4
) -> TestResult:
    """Evaluate ``model`` on every frame of a dataset reference.

    Parameters
    ----------
    model : a potential (see :func:`deepmd_like.load_model`).
    reference : ``FILE.h5`` or ``FILE.h5:NAME,...``.
    batch_size : structures evaluated together.
    """
    from deepmd_like.nn.evaluate import evaluate

    dataset = Dataset(reference)
    if len(dataset) == 0:
        raise UserError(f"{reference} holds no frames")
    dtype, device = _model_dtype(model), _model_device(model)
    type_map = getattr(model, "type_map", None)
    if type_map is not None:
        from ase.data import chemical_symbols

        for info in dataset.systems:
            for z in np.unique(info.atomic_numbers):
                if chemical_symbols[int(z)] not in type_map:
                    raise UserError(
                        f"{dataset.path} system {info.name!r} contains "
                        f"{chemical_symbols[int(z)]}, which the model does not know "
                        f"(its type map is {list(type_map)})"
                    )
    overall = ErrorMetrics()
    per_system: dict[str, ErrorMetrics] = {}
    e_ref, e_pred, f_ref, f_pred, v_ref, v_pred = [], [], [], [], [], []
    for index, info in enumerate(dataset.systems):
        metrics = per_system.setdefault(info.name, ErrorMetrics())
        frames = dataset.system_frames(index)
        for start in range(frames.start, frames.stop, batch_size):
            chunk = list(range(start, min(start + batch_size, frames.stop)))
            batch = collate_structures(dataset.__getitems__(chunk))
            inputs = {
                k: (v.to(dtype) if k in ("positions", "cell") else v).to(device)
                for k, v in batch.items()
            }
            want_virial = bool(
                batch.get("has_virial", torch.zeros(1, dtype=bool)).any()
            )
            result = evaluate(model, inputs, forces=True, virial=want_virial)
            prediction = {k: v.detach().cpu() for k, v in result.items()}
            if not want_virial:
                prediction.pop("virial", None)
            overall.update(prediction, batch)
            metrics.update(prediction, batch)

            n = batch["n_atoms"].double()
            emask = batch.get("has_energy", torch.ones_like(n, dtype=torch.bool))
            e_ref.append((batch["energy"] / n)[emask].numpy())
            e_pred.append((prediction["energy"].double() / n)[emask].numpy())
            mask = batch["has_forces"][batch["structure_index"]]
            f_ref.append(batch["forces"][mask].reshape(-1).numpy())
            f_pred.append(prediction["forces"].double()[mask].reshape(-1).numpy())
            if want_virial:
                vmask = batch["has_virial"]
                v_ref.append(
                    (batch["virial"][vmask] / n[vmask, None, None]).reshape(-1).numpy()
                )
                v_pred.append(
                    (prediction["virial"].double()[vmask] / n[vmask, None, None])
                    .reshape(-1)
                    .numpy()
                )

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)

    return TestResult(
        overall=overall.result(),
        systems={name: m.result() for name, m in per_system.items()},
        energy_per_atom=(cat(e_ref), cat(e_pred)),
        forces=(cat(f_ref), cat(f_pred)),
        virial_per_atom=(cat(v_ref), cat(v_pred)),
    )


PLOT_NAMES = ("energy_parity.png", "force_parity.png", "virial_parity.png")


def check_plot_folder(folder: Path, overwrite: bool = False) -> None:
    """Refuse, before any evaluation, a plot folder that would be clobbered.

    Raises
    ------
    UserError
        If ``folder`` is a file, or holds one of the plots and ``overwrite``
        is false.
    """
    from deepmd_like.fileio import refuse_overwrite

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--plots {folder} exists and is not a folder")
    for name in PLOT_NAMES:
        refuse_overwrite(folder / name, overwrite)


def parity_plots(
    result: TestResult, folder: Path, overwrite: bool = False
) -> list[Path]:
    """Write parity plots (PNG) of energies, forces and (if any) virials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepmd_like.fileio import atomic_path, refuse_overwrite

    panels = [
        (
            "energy_parity.png",
            result.energy_per_atom,
            "energy per atom (eV/atom)",
            result.overall["energy_rmse_per_atom"],
            "eV/atom",
        ),
        (
            "force_parity.png",
            result.forces,
            "force component (eV/Å)",
            result.overall["force_rmse"],
            "eV/Å",
        ),
    ]
    if result.virial_per_atom[0].size:
        panels.append(
            (
                "virial_parity.png",
                result.virial_per_atom,
                "virial per atom (eV/atom)",
                result.overall["virial_rmse_per_atom"],
                "eV/atom",
            )
        )
    paths = [refuse_overwrite(folder / name, overwrite) for name, *_ in panels]
    folder.mkdir(parents=True, exist_ok=True)
    for path, (_, (ref, pred), label, rmse, unit) in zip(paths, panels):
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
        ax.scatter(ref, pred, s=4, alpha=0.5, linewidths=0)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.set_title(f"RMSE {rmse:.3g} {unit}")
        ax.set_aspect("equal", adjustable="datalim")
        # Absolute values on the ticks (no "+1e4" offset for total energies).
        ax.ticklabel_format(useOffset=False, style="plain")
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
    return paths
