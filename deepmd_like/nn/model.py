"""The DeepPot-SE energy model: descriptor ``se_e2_a`` plus fitting nets.

Two layers:

- :class:`DeepPotCore` is the numerical model. It takes plain tensors (the
  batch plus a neighbour list) and is TorchScript-compatible, which is what
  ``dpl freeze`` writes.
- :class:`EnergyModel` is the potential (the package's common protocol:
  ``cutoff``, ``type_map``, ``forward(batch)``). It checks elements, builds a
  neighbour list when the batch has none, runs the core and reports ``sel``
  overflow. Frozen models get the same wrapper on loading
  (:func:`run_core`), so they behave identically.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import Iterable, List, Optional, Tuple

import numpy as np
import torch
from ase.data import atomic_numbers as ASE_NUMBERS
from torch import nn

from deepmd_like.errors import UserError
from deepmd_like.nn.config import ModelConfig
from deepmd_like.nn.descriptor import DescriptorSeE2a
from deepmd_like.nn.environment import select_neighbors
from deepmd_like.nn.fitting import EnergyFitting, compute_energy_shift
from deepmd_like.nn.neighbors import neighbor_list

logger = logging.getLogger(__name__)

_N_ELEMENTS = 119


def _generator(seed: Optional[int]) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    generator.manual_seed(int(seed))
    return generator


class DeepPotCore(nn.Module):
    """Energies of a batch of structures given a neighbour list.

    Parameters
    ----------
    config : ModelConfig
        A validated configuration whose ``sel`` is a list.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, f = config.descriptor, config.fitting_net
        if isinstance(d.sel, str):
            raise UserError(
                "model.descriptor.sel is 'auto': it must be resolved from the "
                "training data (neighbour counts) before the model is built"
            )
        dtype = torch.float64 if config.dtype_name == "float64" else torch.float32
        n_types = len(config.type_map)
        lookup = torch.full((_N_ELEMENTS,), -1, dtype=torch.long)
        for index, symbol in enumerate(config.type_map):
            lookup[ASE_NUMBERS[symbol]] = index
        self.register_buffer("type_lookup", lookup)
        self.rcut = float(d.rcut)
        self.sel: List[int] = list(d.sel)
        type_neuron = config.type_embedding.neuron if config.type_embedding else None
        self.descriptor = DescriptorSeE2a(
            n_types, d.sel, d.rcut, d.rcut_smth, d.neuron, d.axis_neuron,
            d.type_one_side, d.resnet_dt, d.activation_function,
            _generator(d.seed), dtype, type_neuron,
        )
        self.fitting = EnergyFitting(
            n_types, self.descriptor.dim_out, f.neuron, f.resnet_dt,
            f.activation_function, _generator(f.seed), dtype,
            type_width=int(type_neuron[-1]) if type_neuron else 0,
        )
        self.has_type_embedding = type_neuron is not None

    def forward(
        self,
        positions: torch.Tensor,
        atomic_numbers: torch.Tensor,
        structure_index: torch.Tensor,
        cell: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        shifts: torch.Tensor,
        n_structures: int,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energies from positions and a (full) neighbour list.

        Parameters
        ----------
        positions : (n_atoms, 3) float, Å
        atomic_numbers : (n_atoms,) int64
            Must all be in the type map (the caller checks).
        structure_index : (n_atoms,) int64
        cell : (n_structures, 3, 3) float, Å
        centers, neighbors : (n_pairs,) int64
        shifts : (n_pairs, 3) float
            Integer lattice translations of the neighbours; pairs may reach
            beyond the cutoff (they are dropped here).
        n_structures : int

        Returns
        -------
        energy : (n_structures,) float64, eV
        atom_energy : (n_atoms,) float64, eV
        dropped : (2,) int64
            Pairs within the cutoff beyond ``sel``, and atoms that lost any.
        """
        dtype = self.descriptor.davg.dtype
        positions = positions.to(dtype)
        cell = cell.to(dtype)
        types = self.type_lookup[atomic_numbers].clamp(min=0)
        n_atoms = positions.shape[0]

        translation = torch.einsum(
            "pk,pkl->pl", shifts.to(dtype), cell[structure_index[centers]]
        )
        rij = positions[neighbors] - positions[centers] + translation
        kept, rank, dropped = select_neighbors(
            rij, centers, types[neighbors], n_atoms, self.rcut, self.sel
        )
        centers = centers[kept]
        neighbors = neighbors[kept]
        descriptor = self.descriptor(rij[kept], centers, neighbors, rank, types)

        type_vectors = self.descriptor.embedding.type_vectors(dtype, positions.device)
        atom_energy = self.fitting(descriptor, types, type_vectors)
        energy = torch.zeros(
            n_structures, dtype=torch.float64, device=positions.device
        ).index_add(0, structure_index, atom_energy)
        return energy, atom_energy, dropped


def atom_types(
    atomic_numbers: torch.Tensor, type_map: List[str], lookup: torch.Tensor
) -> torch.Tensor:
    """Type indices of atoms, or a UserError naming elements not in ``type_map``."""
    numbers = atomic_numbers.to(torch.long)
    lookup = lookup.to(numbers.device)
    bad = (numbers < 0) | (numbers >= lookup.shape[0])
    types = lookup[numbers.clamp(0, lookup.shape[0] - 1)]
    bad = bad | (types < 0)
    if bool(bad.any()):
        from ase.data import chemical_symbols

        unknown = sorted({int(z) for z in numbers[bad].tolist()})
        names = [
            chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
            for z in unknown
        ]
        raise UserError(
            f"element(s) {', '.join(names)} not in the model's type map "
            f"{type_map}; use a model trained on these elements"
        )
    return types


def run_core(
    core: nn.Module,
    batch: dict,
    type_map: List[str],
    cutoff: float,
    sel_overflow: str = "warn",
) -> dict:
    """Run a (possibly frozen) core on a batch: the potential protocol.

    Builds the neighbour list unless the batch carries one (``centers``,
    ``neighbors``, ``shifts``), checks elements, and warns about or refuses
    ``sel`` overflow with counts.

    Returns
    -------
    dict with ``energy`` (S,) float64 eV and ``atom_energy`` (N,) float64 eV.
    """
    positions = batch["positions"]
    cell = batch["cell"]
    structure_index = batch["structure_index"]
    n_structures = int(cell.shape[0])
    atom_types(batch["atomic_numbers"], type_map, core.type_lookup)
    if "centers" in batch:
        centers, neighbors = batch["centers"], batch["neighbors"]
        shifts = batch["shifts"]
    else:
        pairs = neighbor_list(
            positions, cell, batch["pbc"], structure_index, cutoff, n_structures
        )
        centers, neighbors, shifts = pairs.centers, pairs.neighbors, pairs.shifts
    energy, atom_energy, dropped = core(
        positions, batch["atomic_numbers"].to(torch.long), structure_index, cell,
        centers, neighbors, shifts.to(positions.dtype), n_structures,
    )
    n_pairs, n_atoms = (int(v) for v in dropped.tolist())
    if n_pairs:
        message = (
            f"sel {list(core.sel)} is too small: {n_pairs} neighbour pair(s) "
            f"within rcut {cutoff} Å of {n_atoms} atom(s) were left out of the "
            "descriptor; increase model.descriptor.sel"
        )
        if sel_overflow == "error":
            raise UserError(message)
        _warn_sel_overflow(message, core)
    return {"energy": energy, "atom_energy": atom_energy}


# Calls with a too-small sel so far, per model: the warning is shown on the
# 1st, 10th and 100th such call, then every 1000th, with the count.
_SEL_OVERFLOW_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _warn_sel_overflow(message: str, key: nn.Module) -> None:
    count = _SEL_OVERFLOW_CALLS.get(key, 0) + 1
    _SEL_OVERFLOW_CALLS[key] = count
    if count > 1 and not (count in (10, 100) or count % 1000 == 0):
        return
    following = 10 if count == 1 else (count * 10 if count < 1000 else count + 1000)
    note = (
        f" (force/energy call {count} with this overflow; shown again at "
        f"call {following})"
    )
    # Attributed to this module, not to torch's Module.__call__.
    warnings.warn(message + note, RuntimeWarning, stacklevel=1)


class EnergyModel(nn.Module):
    """The DeepPot-SE (``se_e2_a``) potential.

    Parameters
    ----------
    config : ModelConfig or dict
        The ``model`` section of an input file (DeePMD-kit key names), with
        ``descriptor.sel`` a list of integers.

    Attributes
    ----------
    cutoff : float, Å
    type_map : list of str
    model_type : str
        ``"se_e2_a"``.
    """

    model_type = "se_e2_a"

    def __init__(self, config: ModelConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        self.config = config
        self.type_map: List[str] = list(config.type_map)
        self.cutoff = float(config.descriptor.rcut)
        self.sel_overflow = config.descriptor.sel_overflow
        self.core = DeepPotCore(config)
        self.compressed = False

    @classmethod
    def from_config(cls, config: ModelConfig | dict) -> "EnergyModel":
        """Build a model from a ``model`` section (dict) or a ModelConfig."""
        return cls(config)

    @property
    def descriptor(self) -> DescriptorSeE2a:
        """The descriptor module (holds ``davg``/``dstd`` and the embedding)."""
        return self.core.descriptor

    @property
    def dtype(self) -> torch.dtype:
        return self.core.descriptor.davg.dtype

    def forward(self, batch: dict) -> dict:
        """Energies of a batch (see the package's batch dictionary).

        Returns
        -------
        dict with ``energy`` (S,) float64 eV and ``atom_energy`` (N,) float64 eV.
        """
        return run_core(self.core, batch, self.type_map, self.cutoff,
                        self.sel_overflow)

    def compress(self, min_distance: float = 0.5, step: float = 0.01) -> "EnergyModel":
        """Replace the embedding nets by piecewise quintic tables (in place).

        A fine table covers pair distances from ``min_distance`` to the
        cutoff, a ten times coarser one down to ``min_distance / 5``; closer
        pairs are extrapolated with a warning. Energies and forces agree
        with the exact nets to about 1e-10 relative with the default step.
        A compressed model is for inference (MD, ``dpl test``): its forces
        are not differentiable again.

        Parameters
        ----------
        min_distance : float, Å
            Shortest pair distance the tables cover.
        step : float
            Table interval in the normalised radial variable ``s``.

        Returns
        -------
        self
        """
        from deepmd_like.nn.environment import smooth_weight
        from deepmd_like.nn.tabulate import TabulatedEmbedding

        if self.compressed:
            raise ValueError("the model is already compressed")
        descriptor = self.core.descriptor
        if not 0 < min_distance < descriptor.rcut:
            raise UserError(
                f"min_distance must be between 0 and the cutoff "
                f"{descriptor.rcut} Å, got {min_distance}"
            )
        davg = descriptor.davg[:, 0].detach().to(torch.float64).cpu()
        dstd = descriptor.dstd[:, 0].detach().to(torch.float64).cpu()
        def normalised(distance: float) -> float:
            r = torch.tensor(float(distance), dtype=torch.float64)
            s_max = smooth_weight(r, descriptor.rcut_smth, descriptor.rcut) / r
            return float(((s_max - davg) / dstd).max())

        lower = float((-davg / dstd).min())
        descriptor.embedding = TabulatedEmbedding(
            descriptor.embedding, descriptor.n_types, lower, normalised(min_distance),
            step, self.dtype, far=normalised(min_distance / 5), far_step=10 * step,
        ).to(descriptor.davg.device)
        self.compressed = True
        return self

    # -- statistics the trainer sets before training -------------------------

    def types_of(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """(n_atoms,) type indices; UserError naming unknown elements."""
        lookup = self.core.type_lookup.to(atomic_numbers.device)
        return atom_types(atomic_numbers, self.type_map, lookup)

    def compute_input_stats(
        self, batches: Iterable[dict], protect: float | None = None
    ) -> None:
        """Set the environment matrix's mean and deviation per centre element.

        Statistics run over every slot of the padded environment matrix of
        each atom (empty slots count as zero rows), as DeePMD-kit does: the
        radial column's mean, and the deviations of the radial column and of
        the three angular columns together (floored at ``protect``).

        Parameters
        ----------
        batches : iterable of batch dicts
            Training structures (``positions``, ``atomic_numbers``, ``cell``,
            ``pbc``, ``structure_index``).
        protect : float, optional
            Smallest allowed deviation; default ``config.data_stat_protect``.
        """
        protect = self.config.data_stat_protect if protect is None else protect
        n_types = len(self.type_map)
        sums = np.zeros((n_types, 5))  # count, sum r, sum r^2, sum a, sum a^2
        descriptor = self.core.descriptor
        for batch in batches:
            with torch.no_grad():
                rows, types = self._raw_environment(batch)
            rows = rows.to(torch.float64)
            for t in range(n_types):
                block = rows[types == t]
                if block.shape[0] == 0:
                    continue
                radial, angular = block[..., 0], block[..., 1:]
                sums[t] += [
                    radial.numel(), float(radial.sum()), float((radial**2).sum()),
                    float(angular.sum()), float((angular**2).sum()),
                ]
        davg = torch.zeros(n_types, 4, dtype=torch.float64)
        dstd = torch.ones(n_types, 4, dtype=torch.float64)
        for t in range(n_types):
            count = sums[t, 0]
            if count == 0:
                logger.warning("no %s atoms in the statistics data; its "
                               "environment is left unnormalised", self.type_map[t])
                continue
            mean_r = sums[t, 1] / count
            std_r = np.sqrt(max(sums[t, 2] / count - mean_r**2, 0.0))
            mean_a = sums[t, 3] / (3 * count)
            std_a = np.sqrt(max(sums[t, 4] / (3 * count) - mean_a**2, 0.0))
            davg[t, 0] = mean_r
            dstd[t, 0] = max(std_r, protect)
            dstd[t, 1:] = max(std_a, protect)
        descriptor.davg.copy_(davg.to(descriptor.davg.dtype))
        descriptor.dstd.copy_(dstd.to(descriptor.dstd.dtype))

    def _raw_environment(self, batch: dict) -> Tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised padded environment rows (n_atoms, n_slots, 4) and types."""
        core = self.core
        device = core.descriptor.davg.device
        batch = {k: v.to(device) for k, v in batch.items()
                 if isinstance(v, torch.Tensor)}
        positions = batch["positions"].to(self.dtype)
        cell = batch["cell"].to(self.dtype)
        types = self.types_of(batch["atomic_numbers"]).to(device)
        pairs = neighbor_list(positions, cell, batch["pbc"], batch["structure_index"],
                              self.cutoff)
        translation = torch.einsum(
            "pk,pkl->pl", pairs.shifts.to(self.dtype),
            cell[batch["structure_index"][pairs.centers]],
        )
        rij = positions[pairs.neighbors] - positions[pairs.centers] + translation
        kept, rank, _ = select_neighbors(
            rij, pairs.centers, types[pairs.neighbors], types.shape[0],
            core.rcut, core.sel,
        )
        offset = torch.tensor([0] + core.sel[:-1], device=device).cumsum(0)
        slot = pairs.centers[kept] * core.descriptor.n_slots + (
            offset[types[pairs.neighbors[kept]]] + rank
        )
        from deepmd_like.nn.environment import environment_rows

        rows = environment_rows(rij[kept], core.descriptor.rcut_smth, core.rcut)
        n_slots = core.descriptor.n_slots
        env = torch.zeros(types.shape[0] * n_slots, 4, dtype=self.dtype,
                          device=device)
        env[slot] = rows
        return env.view(types.shape[0], n_slots, 4), types

    def set_energy_shift(self, shift: np.ndarray | torch.Tensor) -> None:
        """Set the per-element energy shifts (eV), in type-map order."""
        shift = torch.as_tensor(np.asarray(shift), dtype=torch.float64)
        if shift.shape != (len(self.type_map),):
            raise ValueError(
                f"energy shift must have one value per element of {self.type_map}, "
                f"got shape {tuple(shift.shape)}"
            )
        buffer = self.core.fitting.energy_shift
        buffer.copy_(shift.to(buffer.device))

    def fit_energy_shift(
        self, batches: Iterable[dict], rcond: float | None = None
    ) -> np.ndarray:
        """Fit and set the energy shifts by least squares on labelled batches.

        Returns
        -------
        (n_types,) ndarray, eV per atom
        """
        counts, energies = [], []
        n_types = len(self.type_map)
        for batch in batches:
            types = self.types_of(batch["atomic_numbers"].cpu())
            index = batch["structure_index"].cpu()
            n_structures = int(batch["energy"].shape[0])
            table = torch.zeros(n_structures, n_types, dtype=torch.float64)
            ones = torch.ones_like(index, dtype=torch.float64)
            table.index_put_((index, types), ones, accumulate=True)
            keep = batch.get("has_energy")
            energy = batch["energy"].cpu().to(torch.float64)
            if keep is not None:
                table, energy = table[keep.cpu()], energy[keep.cpu()]
            counts.append(table.numpy())
            energies.append(energy.numpy())
        shift = compute_energy_shift(np.concatenate(counts), np.concatenate(energies),
                                     rcond)
        self.set_energy_shift(shift)
        return shift
