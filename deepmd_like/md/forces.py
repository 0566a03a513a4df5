"""Energies, forces and virials of a potential for the MD engine.

The engine asks a potential for forces through :func:`compute_forces`. A
potential that offers analytic derivatives (``energy_and_forces(batch,
virial)``) is used that way; any other potential goes through the package's
shared autograd evaluation, ``deepmd_like.nn.evaluate.evaluate``.
"""

from __future__ import annotations

import torch


def _autograd_evaluate(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], virial: bool
) -> dict[str, torch.Tensor]:
    """Forces -dE/dr and virials -dE/d(strain) of ``model`` by autograd.

    Used only where the shared evaluation module is not installed; it applies
    the same strain convention: positions' = positions + positions @ eps[s],
    cell' = cell + cell @ eps[s].
    """
    positions = batch["positions"].detach().requires_grad_(True)
    cell = batch["cell"].detach()
    inputs = [positions]
    strained = dict(batch)
    if virial:
        n_structures = cell.shape[0]
        strain = torch.zeros(
            n_structures, 3, 3, dtype=positions.dtype, device=positions.device
        ).requires_grad_(True)
        inputs.append(strain)
        atom_strain = strain[batch["structure_index"]]  # [n_atoms, 3, 3]
        strained["positions"] = positions + torch.einsum(
            "ni,nij->nj", positions, atom_strain
        )
        strained["cell"] = cell + cell @ strain
    else:
        strained["positions"] = positions
    with torch.enable_grad():
        out = model(strained)
        grads = torch.autograd.grad(out["energy"].sum(), inputs)
    result = {
        "energy": out["energy"].detach(),
        "atom_energy": out["atom_energy"].detach(),
        "forces": -grads[0],
    }
    if virial:
        result["virial"] = -grads[1]
    return result


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
    try:
        from deepmd_like.nn.evaluate import evaluate
    except ImportError:
        return _autograd_evaluate(potential, batch, virial)
    out = evaluate(potential, batch, forces=True, virial=virial)
    return {key: value.detach() for key, value in out.items()}
