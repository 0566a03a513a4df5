"""Energies, forces and virials of a potential for the MD engine.

The engine asks a potential for forces through :func:`compute_forces`. A
potential that offers analytic derivatives (``energy_and_forces(batch,
virial)``) is used that way; any other potential goes through the package's
shared autograd evaluation, ``deepmd_like.nn.evaluate.evaluate``.
"""

from __future__ import annotations

import torch

from deepmd_like.nn.evaluate import evaluate


def compute_forces(
    potential: torch.nn.Module, batch: dict[str, torch.Tensor], virial: bool = False
) -> dict[str, torch.Tensor]:
    """Energy, per-atom energy, forces and (optionally) virial of a batch.

    Parameters
    ----------
    potential : torch.nn.Module
        Follows the potential protocol (``cutoff``, ``type_map``, ``forward``).
    batch : dict
        The batch dictionary, with or without a neighbour list.
    virial : bool
        Also compute the virial.

    Returns
    -------
    dict
        ``energy`` (S,) eV, ``atom_energy`` (N,) eV, ``forces`` (N,3) eV/Å and,
        if asked, ``virial`` (S,3,3) eV (W = -dE/d(strain) = -V sigma).
    """
    analytic = getattr(potential, "energy_and_forces", None)
    if analytic is not None:
        with torch.no_grad():
            return analytic(batch, virial=virial)
    out = evaluate(potential, batch, forces=True, virial=virial)
    return {key: value.detach() for key, value in out.items()}
