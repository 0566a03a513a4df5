"""Forces and virials of any potential, by automatic differentiation.

Every potential maps a batch to energies; this one function turns that into
forces ``F = -dE/dr`` and virials ``W = -dE/deps``, where ``eps`` is a
(non-symmetric) homogeneous strain applied to the positions and the cell of
each structure::

    positions' = positions + positions @ eps[s]
    cell'      = cell + cell @ eps[s]

evaluated at ``eps = 0``. The trainer, the ASE calculator and the MD engine
all go through it, so every model gets forces and virials the same way.
"""

from __future__ import annotations

import torch


def evaluate(
    model: torch.nn.Module,
    batch: dict,
    forces: bool = True,
    virial: bool = False,
    create_graph: bool = False,
) -> dict:
    """Energies, forces and virials of a batch of structures.

    Parameters
    ----------
    model : potential
        ``model(batch)`` returns ``energy`` (S,) and ``atom_energy`` (N,).
    batch : dict
        The batch dictionary (``positions`` (N, 3) Å, ``cell`` (S, 3, 3) Å,
        ``structure_index`` (N,), ...); not modified.
    forces : bool
        Compute ``forces`` (N, 3) eV/Å.
    virial : bool
        Compute ``virial`` (S, 3, 3) eV, ``W = -dE/deps`` (``= -V sigma``).
    create_graph : bool
        Keep the graph of the derivatives (to train on forces or virials).
        Without it the returned tensors are detached.

    Returns
    -------
    dict with ``energy`` (S,), ``atom_energy`` (N,) and, as asked, ``forces``
    and ``virial``, plus any other outputs of the model.
    """
    if not (forces or virial):
        return dict(model(batch))

    positions = batch["positions"].detach().requires_grad_(True)
    cell = batch["cell"]
    inputs = dict(batch)
    if virial:
        n_structures = cell.shape[0]
        strain = torch.zeros(
            n_structures, 3, 3, dtype=positions.dtype, device=positions.device,
            requires_grad=True,
        )
        per_atom = strain[batch["structure_index"]]  # [N, 3, 3]
        inputs["positions"] = positions + torch.bmm(
            positions.unsqueeze(1), per_atom
        ).squeeze(1)
        inputs["cell"] = cell.to(positions.dtype) + torch.bmm(
            cell.to(positions.dtype), strain
        )
    else:
        inputs["positions"] = positions

    out = dict(model(inputs))
    energy = out["energy"]
    wrt = [positions] if forces else []
    if virial:
        wrt.append(strain)
    grads = torch.autograd.grad(
        energy.sum(), wrt, create_graph=create_graph, allow_unused=True
    )
    k = 0
    if forces:
        grad = grads[0]
        out["forces"] = (
            -grad if grad is not None else torch.zeros_like(positions)
        )
        k = 1
    if virial:
        grad = grads[k]
        out["virial"] = -grad if grad is not None else torch.zeros_like(strain)
    if not create_graph:
        out = {key: value.detach() for key, value in out.items()}
    return out
