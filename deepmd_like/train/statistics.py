"""Statistics of the training data needed before step 0.

- :func:`energy_shifts`: per-element energies by least squares, so a model
  starts from the right absolute energy (DFT totals are large);
- :func:`neighbour_counts` and :func:`auto_sel`: the largest number of
  neighbours of each element within the cutoff, for ``sel: "auto"``.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import torch

from deepmd_like.errors import UserError

log = logging.getLogger(__name__)


def energy_shifts(
    type_counts: np.ndarray, energies: np.ndarray, rcond: float | None = None
) -> np.ndarray:
    """Per-element energies that best explain the total energies.

    Solves ``type_counts @ shift ≈ energies`` by least squares (minimum norm
    when the compositions do not determine every element separately, e.g.
    water always with two H per O).

    Parameters
    ----------
    type_counts : (n_frames, n_types) float
        Atoms of each element in each frame.
    energies : (n_frames,) float, eV
        Total energies.

    Returns
    -------
    (n_types,) float64, eV per atom of each element.
    """
    counts = np.asarray(type_counts, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if counts.shape[0] == 0:
        raise UserError("no labelled energies in the training data")
    shift, *_ = np.linalg.lstsq(counts, energies, rcond=rcond)
    return shift


def neighbour_counts(
    batch: dict[str, torch.Tensor],
    type_of_atom: torch.Tensor,
    n_types: int,
    cutoff: float,
) -> tuple[torch.Tensor, float]:
    """Largest number of neighbours of each type around any atom of a batch.

    Parameters
    ----------
    batch : dict
        ``positions``, ``cell``, ``pbc``, ``structure_index``.
    type_of_atom : (n_atoms,) int64
        Index of each atom's element in the type map.
    n_types : int
    cutoff : float, Å

    Returns
    -------
    max_counts : (n_types,) int64
    min_distance : float, Å (inf if there are no pairs)
    """
    from deepmd_like.nn.neighbors import neighbor_list, pair_vectors

    nl = neighbor_list(
        batch["positions"],
        batch["cell"],
        batch["pbc"],
        batch["structure_index"],
        cutoff,
        n_structures=int(batch["cell"].shape[0]),
    )
    n_atoms = int(batch["positions"].shape[0])
    counts = torch.zeros(n_atoms, n_types, dtype=torch.int64)
    if len(nl) == 0:
        return counts.max(dim=0).values, math.inf
    counts.index_put_(
        (nl.centers, type_of_atom[nl.neighbors]),
        torch.ones_like(nl.centers),
        accumulate=True,
    )
    vectors = pair_vectors(
        batch["positions"], batch["cell"], batch["structure_index"], nl
    )
    return counts.max(dim=0).values, float(vectors.norm(dim=-1).min())


def auto_sel(max_counts: Sequence[int], ratio: float = 1.1) -> list[int]:
    """DeePMD-kit's ``sel: "auto"``: counts times ``ratio``, up to a multiple of 4."""
    return [4 * ((int(count * ratio) + 3) // 4) for count in max_counts]
