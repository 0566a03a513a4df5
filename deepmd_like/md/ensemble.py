"""An ensemble of potentials: mean forces and the models' disagreement.

Several potentials trained on the same data from different random starts
agree where the data is dense and disagree where it is thin. Their spread
is DeePMD-kit's *model deviation*: for atom i,

    ε_i = sqrt( (1/M) Σ_m |F_i^m − F̄_i|² ),   F̄_i = (1/M) Σ_m F_i^m,

and for a structure the maximum (also the minimum and mean) of ε_i over its
atoms. :class:`EnsemblePotential` follows the potential protocol, so the MD
engine and the ASE calculator run it like any other potential: the mean
energy, forces and virial drive the dynamics, and the deviation of the
latest evaluation is kept in :attr:`EnsemblePotential.last_deviation`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from deepmd_like.errors import UserError


def atom_force_deviation(forces: torch.Tensor) -> torch.Tensor:
    """Per-atom force deviation of an ensemble.

    Parameters
    ----------
    forces : (n_models, n_atoms, 3) float, eV/Å

    Returns
    -------
    (n_atoms,) float, eV/Å
        Root-mean-square distance of the models' force vectors from their
        mean.
    """
    mean = forces.mean(dim=0, keepdim=True)
    return ((forces - mean) ** 2).sum(dim=-1).mean(dim=0).sqrt()


def structure_deviation(
    per_atom: torch.Tensor, structure_index: torch.Tensor, n_structures: int
) -> dict[str, torch.Tensor]:
    """Maximum, minimum and mean of per-atom values in each structure.

    Parameters
    ----------
    per_atom : (n_atoms,) float
    structure_index : (n_atoms,) int64
    n_structures : int

    Returns
    -------
    dict
        ``max``, ``min``, ``mean``: (n_structures,) float each.
    """
    shape = (n_structures,)
    kw = {"dtype": per_atom.dtype, "device": per_atom.device}
    high = torch.full(shape, -torch.inf, **kw).scatter_reduce(
        0, structure_index, per_atom, reduce="amax"
    )
    low = torch.full(shape, torch.inf, **kw).scatter_reduce(
        0, structure_index, per_atom, reduce="amin"
    )
    total = torch.zeros(shape, **kw).index_add_(0, structure_index, per_atom)
    count = torch.bincount(structure_index, minlength=n_structures).to(per_atom.dtype)
    return {"max": high, "min": low, "mean": total / count.clamp(min=1)}


def _evaluate(model, batch, virial: bool) -> dict[str, torch.Tensor]:
    from deepmd_like.nn.evaluate import evaluate

    with torch.enable_grad():
        out = evaluate(model, batch, forces=True, virial=virial)
    return {key: value.detach() for key, value in out.items()}


def _merge_type_maps(models: Sequence[torch.nn.Module]) -> list[str] | None:
    maps = [getattr(m, "type_map", None) for m in models]
    known = [m for m in maps if m is not None]
    if not known:
        return None
    common = [symbol for symbol in known[0] if all(symbol in m for m in known[1:])]
    return common


class EnsemblePotential(torch.nn.Module):
    """Several potentials evaluated together; their mean drives the dynamics.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Potentials that follow the protocol (``cutoff``, ``type_map``,
        ``forward``). At least two.

    Attributes
    ----------
    cutoff : float, Å — the largest of the models' cutoffs.
    type_map : list of str or None — elements every model knows.
    last_deviation : dict of (n_structures,) tensors, eV/Å
        ``max``, ``min`` and ``mean`` over atoms of the per-atom force
        deviation at the latest evaluation, and ``atom`` (n_atoms,).
    """

    def __init__(self, models: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if len(models) < 2:
            raise UserError(
                f"an ensemble needs at least two models, got {len(models)}"
            )
        self.models = torch.nn.ModuleList(models)
        self.cutoff = max(float(m.cutoff) for m in models)
        self.type_map = _merge_type_maps(models)
        self.last_deviation: dict[str, torch.Tensor] = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean energy (S,) and per-atom energy (N,) of the models, eV."""
        outs = [model(batch) for model in self.models]
        return {
            "energy": torch.stack([o["energy"] for o in outs]).mean(0),
            "atom_energy": torch.stack([o["atom_energy"] for o in outs]).mean(0),
        }

    def energy_and_forces(
        self, batch: dict[str, torch.Tensor], virial: bool = False
    ) -> dict[str, torch.Tensor]:
        """Mean energy, forces (and virial) of the models, and their deviation.

        Returns
        -------
        dict
            ``energy`` (S,) eV, ``atom_energy`` (N,) eV, ``forces`` (N, 3)
            eV/Å, ``virial`` (S, 3, 3) eV if asked, ``atom_force_deviation``
            (N,) eV/Å and ``force_deviation_max``/``_min``/``_mean`` (S,).
        """
        outs = [_evaluate(model, batch, virial) for model in self.models]
        result = {
            key: torch.stack([o[key] for o in outs]).mean(0)
            for key in ("energy", "atom_energy", "forces")
            + (("virial",) if virial else ())
        }
        forces = torch.stack([o["forces"] for o in outs])  # [M, N, 3]
        per_atom = atom_force_deviation(forces)
        n_structures = batch["cell"].shape[0]
        reduced = structure_deviation(
            per_atom, batch["structure_index"], n_structures
        )
        self.last_deviation = {"atom": per_atom, **reduced}
        result["atom_force_deviation"] = per_atom
        for key, value in reduced.items():
            result[f"force_deviation_{key}"] = value
        return result
