"""The few calls the trainer makes into the model code, in one place.

Keeping them together keeps :mod:`deepmd_like.train` independent of how the
model package names its classes: building a model from a plain configuration
dictionary, setting its input statistics and energy shifts, and evaluating
energies, forces and virials.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def build_model(model_config: dict[str, Any]) -> torch.nn.Module:
    """The eager model described by a checkpoint's ``model_config``."""
    from deepmd_like.nn.model import EnergyModel

    return EnergyModel.from_config(model_config)


def set_statistics(
    model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    energy_shift: np.ndarray,
) -> None:
    """Fit the descriptor's input statistics and set per-element energy shifts.

    Parameters
    ----------
    batches : batches of training structures (model dtype and device).
    energy_shift : (n_types,) eV, in type-map order.
    """
    model.compute_input_stats(batches)
    model.set_energy_shift(torch.as_tensor(energy_shift, dtype=torch.float64))


def evaluate(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    forces: bool = True,
    virial: bool = False,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Energies, forces and virials (see :func:`deepmd_like.nn.evaluate.evaluate`)."""
    from deepmd_like.nn.evaluate import evaluate as _evaluate

    return _evaluate(
        model, batch, forces=forces, virial=virial, create_graph=create_graph
    )
