"""The energy/force/virial loss of DeePMD-kit and the error metrics we report.

Loss (for a batch of ``S`` structures, structure ``s`` with ``N_s`` atoms)::

    L = p_e * mean_s(dE_s**2 / N_s)
      + p_f * mean over labelled force components (dF**2)
      + p_v * mean_s(mean_9(dW_s**2) / N_s)       (structures with a virial)

with each prefactor interpolated by the learning rate,
``p = limit_pref + (start_pref - limit_pref) * lr / start_lr``. For a batch
from one system (all ``N_s`` equal) this is exactly DeePMD-kit's standard
energy loss, which divides the mean squared total-energy error by the number
of atoms; dividing per structure keeps the same weighting when systems of
different sizes share a batch.

Metrics (used by the training log and by ``dpl test``, so the two agree):
energy RMSE/MAE per atom over structures (``dE_s / N_s``), total-energy
RMSE/MAE, force RMSE/MAE over labelled force components, virial RMSE over
labelled structures (total and divided by ``N_s``).
"""

from __future__ import annotations

import math

import torch

from deepmd_like.config import LossConfig


class EnergyLoss:
    """DeePMD-kit's standard energy loss with learning-rate-driven prefactors.

    Parameters
    ----------
    config : LossConfig
        The prefactors.
    start_lr : float
        Learning rate at step 0 (the prefactors' reference).
    """

    def __init__(self, config: LossConfig, start_lr: float) -> None:
        self.config = config
        self.start_lr = start_lr

    @property
    def uses_virial(self) -> bool:
        """Whether any virial prefactor is non-zero (virials must be computed)."""
        return self.config.start_pref_v != 0 or self.config.limit_pref_v != 0

    @property
    def uses_forces(self) -> bool:
        """Whether any force prefactor is non-zero."""
        return self.config.start_pref_f != 0 or self.config.limit_pref_f != 0

    def prefactors(self, lr: float) -> tuple[float, float, float]:
        """Energy, force and virial prefactors at learning rate ``lr``."""
        c = self.config
        coef = lr / self.start_lr
        pref_e = c.limit_pref_e + (c.start_pref_e - c.limit_pref_e) * coef
        pref_f = c.limit_pref_f + (c.start_pref_f - c.limit_pref_f) * coef
        pref_v = c.limit_pref_v + (c.start_pref_v - c.limit_pref_v) * coef
        return pref_e, pref_f, pref_v

    def __call__(
        self,
        prediction: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        lr: float,
    ) -> torch.Tensor:
        """The scalar loss of one batch.

        Parameters
        ----------
        prediction : dict
            ``energy`` (S,) eV, ``forces`` (N, 3) eV/Å, ``virial`` (S, 3, 3) eV
            where the loss needs them.
        batch : dict
            The batch with labels (``energy``, ``forces``, ``has_forces``,
            ``virial``, ``has_virial``, ``n_atoms``, ``structure_index``).
        lr : float
            The learning rate of this step.
        """
        pref_e, pref_f, pref_v = self.prefactors(lr)
        # In float64 whatever the model's precision: total energies are large.
        n_atoms = batch["n_atoms"].double()
        loss = n_atoms.new_zeros(())
        if pref_e != 0:
            d_energy = prediction["energy"].double() - batch["energy"].double()
            weight = batch.get("has_energy")
            weight = (
                torch.ones_like(n_atoms) if weight is None else weight.to(n_atoms.dtype)
            )
            loss = loss + pref_e * (weight * d_energy.square() / n_atoms).mean()
        if pref_f != 0 and "forces" in batch:
            mask = _atom_mask(batch, "has_forces")
            if bool(mask.any()):
                d_force = prediction["forces"][mask].double() - batch["forces"][mask]
                loss = loss + pref_f * d_force.square().mean()
        if pref_v != 0 and "virial" in batch:
            mask = batch.get("has_virial")
            mask = torch.ones_like(n_atoms, dtype=torch.bool) if mask is None else mask
            if bool(mask.any()):
                d_virial = (prediction["virial"].double() - batch["virial"])[mask]
                per_structure = d_virial.square().mean(dim=(1, 2)) / n_atoms[mask]
                loss = loss + pref_v * per_structure.sum() / len(n_atoms)
        return loss


def _atom_mask(batch: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """Per-atom mask from a per-structure flag (all True if absent)."""
    flags = batch.get(key)
    if flags is None:
        return torch.ones_like(batch["structure_index"], dtype=torch.bool)
    return flags[batch["structure_index"]]


class ErrorMetrics:
    """Running sums for energy, force and virial errors over many batches.

    Call :meth:`update` with each batch's prediction, then :meth:`result`.
    """

    def __init__(self) -> None:
        self.n_structures = 0
        self.sum_sq_e = 0.0
        self.sum_abs_e = 0.0
        self.sum_sq_e_atom = 0.0
        self.sum_abs_e_atom = 0.0
        self.n_force = 0
        self.sum_sq_f = 0.0
        self.sum_abs_f = 0.0
        self.n_virial = 0
        self.sum_sq_v = 0.0
        self.sum_sq_v_atom = 0.0

    @torch.no_grad()
    def update(
        self, prediction: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> None:
        """Add one batch (same keys as :class:`EnergyLoss`)."""
        n_atoms = batch["n_atoms"].double()
        d_energy = prediction["energy"].double() - batch["energy"].double()
        if "has_energy" in batch:
            d_energy = d_energy[batch["has_energy"]]
            n_atoms_e = n_atoms[batch["has_energy"]]
        else:
            n_atoms_e = n_atoms
        self.n_structures += len(d_energy)
        self.sum_sq_e += float(d_energy.square().sum())
        self.sum_abs_e += float(d_energy.abs().sum())
        self.sum_sq_e_atom += float((d_energy / n_atoms_e).square().sum())
        self.sum_abs_e_atom += float((d_energy / n_atoms_e).abs().sum())
        if "forces" in prediction and "forces" in batch:
            mask = _atom_mask(batch, "has_forces")
            d_force = (prediction["forces"].double() - batch["forces"].double())[mask]
            self.n_force += d_force.numel()
            self.sum_sq_f += float(d_force.square().sum())
            self.sum_abs_f += float(d_force.abs().sum())
        if "virial" in prediction and "virial" in batch:
            mask = batch.get("has_virial")
            if mask is None:
                mask = torch.ones_like(n_atoms, dtype=torch.bool)
            d_virial = (prediction["virial"].double() - batch["virial"].double())[mask]
            self.n_virial += d_virial.numel()
            self.sum_sq_v += float(d_virial.square().sum())
            per_atom = d_virial / n_atoms[mask][:, None, None]
            self.sum_sq_v_atom += float(per_atom.square().sum())

    def result(self) -> dict[str, float]:
        """The metrics; NaN where nothing was labelled.

        Keys: ``n_structures``, ``energy_rmse`` and ``energy_mae`` (eV),
        ``energy_rmse_per_atom`` and ``energy_mae_per_atom`` (eV/atom),
        ``force_rmse`` and ``force_mae`` (eV/Å), ``virial_rmse`` (eV) and
        ``virial_rmse_per_atom`` (eV/atom).
        """
        nan = math.nan
        n = self.n_structures
        return {
            "n_structures": n,
            "energy_rmse": math.sqrt(self.sum_sq_e / n) if n else nan,
            "energy_mae": self.sum_abs_e / n if n else nan,
            "energy_rmse_per_atom": math.sqrt(self.sum_sq_e_atom / n) if n else nan,
            "energy_mae_per_atom": self.sum_abs_e_atom / n if n else nan,
            "force_rmse": math.sqrt(self.sum_sq_f / self.n_force)
            if self.n_force
            else nan,
            "force_mae": self.sum_abs_f / self.n_force if self.n_force else nan,
            "virial_rmse": math.sqrt(self.sum_sq_v / self.n_virial)
            if self.n_virial
            else nan,
            "virial_rmse_per_atom": (
                math.sqrt(self.sum_sq_v_atom / self.n_virial) if self.n_virial else nan
            ),
        }


def energy_force_metrics(
    predictions: list[dict[str, torch.Tensor]], batches: list[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """Metrics of :class:`ErrorMetrics` over matching lists of predictions/batches."""
    metrics = ErrorMetrics()
    for prediction, batch in zip(predictions, batches):
        metrics.update(prediction, batch)
    return metrics.result()
