"""Batching frames of different sizes into one dictionary of tensors."""

from __future__ import annotations

from typing import Sequence

import torch

# Keys stacked per structure; everything per atom is concatenated.
_PER_STRUCTURE = (
    "cell", "pbc", "energy", "virial", "has_energy", "has_forces", "has_virial",
    "system_index", "frame_index",
)
_PER_ATOM = ("positions", "atomic_numbers", "forces")


def collate_structures(frames: Sequence[dict[str, torch.Tensor]]) -> dict:
    """Join frames (as served by :class:`~deepmd_like.data.Dataset`) into a batch.

    Parameters
    ----------
    frames : S frames; frame s has n_s atoms.

    Returns
    -------
    dict with, for N = sum of n_s atoms:

    - ``positions`` (N, 3) float64, Å; ``atomic_numbers`` (N,) int64;
      ``forces`` (N, 3) float64, eV/Å
    - ``structure_index`` (N,) int64: which structure each atom belongs to
    - ``n_atoms`` (S,) int64
    - ``cell`` (S, 3, 3), ``pbc`` (S, 3), ``energy`` (S,), ``virial``
      (S, 3, 3), masks ``has_energy``/``has_forces``/``has_virial`` (S,),
      ``system_index`` and ``frame_index`` (S,)

    Keys missing from the frames are left out of the batch.
    """
    if not frames:
        raise ValueError("collate_structures needs at least one frame")
    first = frames[0]
    batch: dict[str, torch.Tensor] = {}
    for key in _PER_ATOM:
        if key in first:
            batch[key] = torch.cat([frame[key] for frame in frames])
    for key in _PER_STRUCTURE:
        if key in first:
            batch[key] = torch.stack([frame[key] for frame in frames])
    n_atoms = torch.tensor(
        [frame["positions"].shape[0] for frame in frames], dtype=torch.int64
    )
    batch["n_atoms"] = n_atoms
    batch["structure_index"] = torch.repeat_interleave(
        torch.arange(len(frames), dtype=torch.int64), n_atoms
    )
    return batch
