"""The ASE calculator: any of the package's potentials behind ASE's interface.

With it every ASE driver works with our potentials: molecular dynamics
(``ase.md.VelocityVerlet``, ``Langevin``), optimisers, NEB, phonons::

    from ase.build import bulk
    from ase.md.verlet import VelocityVerlet
    from deepmd_like.calculator import DPLCalculator

    atoms = bulk("Cu", cubic=True).repeat(3)
    atoms.calc = DPLCalculator("model.pt")
    VelocityVerlet(atoms, timestep=1.0 * ase.units.fs).run(100)

With a list of models (an ensemble) the mean energy, forces and stress are
returned and the models' disagreement is available to any driver as
``calc.results["force_deviation"]`` (eV/Å, DeePMD-kit's max_devi_f: the
largest over atoms of the root-mean-square distance of the models' force
vectors from their mean), with ``atom_force_deviation`` per atom.

The calculator keeps a Verlet neighbour list with a skin (``skin``, Å)
between calls, rebuilt only when an atom has moved more than half the skin
or the cell deformed too much, so an ASE MD loop does not search for
neighbours at every step. Forces go through the same path as the MD engine
(:func:`deepmd_like.md.forces.compute_forces`: a potential's analytic
derivatives where it has them, otherwise the shared autograd
:func:`deepmd_like.nn.evaluate.evaluate`).

Stress follows ASE: σ = (1/V) ∂E/∂ε with V the volume of the whole cell,
also for a slab (periodic in two directions), where V includes the vacuum
along the open direction. A system periodic in no direction has no stress.
"""

from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
import torch
from ase.calculators.calculator import (
    Calculator,
    PropertyNotImplementedError,
    all_changes,
)
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from deepmd_like.errors import UserError
from deepmd_like.md.ensemble import EnsemblePotential
from deepmd_like.md.forces import compute_forces

ModelLike = Union[str, os.PathLike, torch.nn.Module]

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    torch.float64: torch.float64,
    torch.float32: torch.float32,
}


def _resolve_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float64
    if dtype not in _DTYPES:
        raise UserError(f"dtype must be float64 or float32, got {dtype!r}")
    return _DTYPES[dtype]


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _load(model: ModelLike, device, dtype: torch.dtype) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        return model.to(device=device, dtype=dtype)
    if isinstance(model, (str, os.PathLike)):
        from deepmd_like import load_model

        if not os.path.isfile(model):
            raise UserError(f"model file {os.fspath(model)} does not exist")
        return load_model(model, device=device, dtype=dtype)
    raise TypeError(
        "model must be a file path, a torch.nn.Module potential or a list of "
        f"them, got {type(model).__name__}"
    )


class DPLCalculator(Calculator):
    """ASE calculator for the package's potentials.

    Parameters
    ----------
    model : str, os.PathLike, torch.nn.Module, or a list of them
        A model file (``dpl freeze`` output or a training checkpoint), a
        loaded potential (anything following the potential protocol,
        Lennard-Jones included), or a list of them for an ensemble.
    device : str or torch.device, optional
        Where the model runs. Default: the device of an in-memory model,
        CPU for a file.
    dtype : torch.dtype or str, optional
        ``float64`` (default) or ``float32``. An in-memory model is
        converted in place to this type and device.
    skin : float, Å
        Skin of the neighbour list kept between calls (0 rebuilds it
        whenever an atom moves).
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator`.

    Notes
    -----
    ``implemented_properties``: energy, free_energy (= energy), energies
    (per atom), forces and stress (Voigt order, eV/Å³). Results are
    recomputed whenever positions, atomic numbers, cell or pbc change.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: ModelLike | Sequence[ModelLike],
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        skin: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not skin >= 0:
            raise UserError(f"skin must be >= 0 Å, got {skin}")
        self.skin = float(skin)
        self._neighbors = None
        self._neighbors_key = None
        self.dtype = _resolve_dtype(dtype)
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise UserError("DPLCalculator needs at least one model")
        if device is None:
            first = models[0]
            device = (
                _model_device(first) if isinstance(first, torch.nn.Module) else "cpu"
            )
        self.device = torch.device(device)
        loaded = [_load(m, self.device, self.dtype) for m in models]
        self.is_ensemble = len(loaded) > 1
        self.potential = EnsemblePotential(loaded) if self.is_ensemble else loaded[0]

    @property
    def type_map(self) -> list[str] | None:
        """Elements the potential knows (None: any)."""
        return getattr(self.potential, "type_map", None)

    def _check_elements(self, numbers: np.ndarray) -> None:
        known = self.type_map
        if known is None:
            return
        for z in np.unique(numbers):
            symbol = chemical_symbols[int(z)]
            if symbol not in known:
                raise UserError(
                    f"element {symbol} is not in the potential's type_map {known}; "
                    f"this model was not trained on {symbol}"
                )

    def _batch(self, atoms) -> dict[str, torch.Tensor]:
        kw = {"dtype": self.dtype, "device": self.device}
        n_atoms = len(atoms)
        return {
            "positions": torch.as_tensor(atoms.get_positions(), **kw),
            "atomic_numbers": torch.as_tensor(
                atoms.get_atomic_numbers(), dtype=torch.long, device=self.device
            ),
            "structure_index": torch.zeros(
                n_atoms, dtype=torch.long, device=self.device
            ),
            "cell": torch.as_tensor(np.asarray(atoms.cell[:]), **kw)[None],
            "pbc": torch.as_tensor(np.asarray(atoms.pbc, dtype=bool))[None].to(
                self.device
            ),
            "n_atoms": torch.tensor([n_atoms], device=self.device),
        }

    def _pairs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The neighbour list of the batch, reused while it stays valid."""
        from deepmd_like.md.verlet import VerletList

        key = (int(batch["positions"].shape[0]), tuple(batch["pbc"][0].tolist()))
        if self._neighbors is None or key != self._neighbors_key:
            # Pair potentials with analytic forces take each pair once.
            half = bool(getattr(self.potential, "uses_half_list", False))
            self._neighbors = VerletList(
                float(self.potential.cutoff), self.skin, half=half
            )
            self._neighbors_key = key
        pairs = self._neighbors.update(
            batch["positions"], batch["cell"], batch["pbc"], batch["structure_index"]
        )
        prefix = "half_" if self._neighbors.half else ""
        return {
            f"{prefix}centers": pairs.centers,
            f"{prefix}neighbors": pairs.neighbors,
            f"{prefix}shifts": pairs.shifts,
        }

    def calculate(
        self,
        atoms=None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Compute energy, per-atom energies, forces and (if asked) stress."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.any():
            raise PropertyNotImplementedError(
                "stress is not defined for a system that is periodic in no "
                "direction (pbc all False)"
            )
        self._check_elements(atoms.get_atomic_numbers())
        batch = self._batch(atoms)
        batch.update(self._pairs(batch))
        out = compute_forces(self.potential, batch, virial=want_stress)

        def numpy(key: str) -> np.ndarray:
            return out[key].detach().to("cpu", torch.float64).numpy()

        energy = float(numpy("energy")[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = numpy("atom_energy").copy()
        self.results["forces"] = numpy("forces").copy()
        if want_stress:
            volume = abs(float(np.linalg.det(np.asarray(atoms.cell[:]))))
            if volume < 1e-12:
                raise UserError(
                    "stress needs a cell with a non-zero volume; this system's "
                    f"cell is {atoms.cell[:].tolist()}"
                )
            virial = numpy("virial")[0]
            # sigma = (1/V) dE/d(eps) = -W/V, symmetrised.
            stress = -0.5 * (virial + virial.T) / volume
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        if self.is_ensemble:
            per_atom = numpy("atom_force_deviation").copy()
            self.results["atom_force_deviation"] = per_atom
            self.results["force_deviation"] = float(per_atom.max())
            self.results["force_deviation_min"] = float(per_atom.min())
            self.results["force_deviation_mean"] = float(per_atom.mean())
