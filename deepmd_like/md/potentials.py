"""Classical potentials that follow the package's potential protocol.

A potential is a :class:`torch.nn.Module` with a ``cutoff`` (Å), a
``type_map`` (element symbols it knows, or ``None`` for any element) and
``forward(batch) -> {"energy": (S,), "atom_energy": (N,)}``. Forces and
virials come from the shared autograd evaluation; a potential may also
offer ``energy_and_forces(batch, virial)`` with analytic derivatives, which
the MD engine prefers because it is faster (the tests check it against
autograd).

If the batch carries a precomputed neighbour list (``centers``,
``neighbors``, ``shifts``, e.g. an MD Verlet list with a skin), pairs beyond
the potential's own cutoff are dropped here.
"""

from __future__ import annotations

import torch
from ase.data import chemical_symbols

from deepmd_like.errors import UserError
from deepmd_like.nn.neighbors import NeighborList, neighbor_list

SMOOTHING = ("energy_shift", "force_shift", "none")


def batch_pairs(batch: dict[str, torch.Tensor], cutoff: float) -> NeighborList:
    """The batch's neighbour list, or a fresh one if it carries none."""
    if "centers" in batch:
        return NeighborList(batch["centers"], batch["neighbors"], batch["shifts"])
    return neighbor_list(
        batch["positions"],
        batch["cell"],
        batch["pbc"],
        batch["structure_index"],
        cutoff,
        n_structures=batch["cell"].shape[0],
    )


def _pair_translation(
    cell: torch.Tensor, structure_index: torch.Tensor, pairs: NeighborList
) -> torch.Tensor:
    """``shift @ cell`` for every pair, (n_pairs, 3) Å."""
    shifts = pairs.shifts.to(cell.dtype)
    if cell.shape[0] == 1:
        return shifts @ cell[0]
    cell_of_pair = cell[structure_index[pairs.centers]]  # [n_pairs, 3, 3]
    return torch.einsum("pk,pkl->pl", shifts, cell_of_pair)


def check_elements(
    atomic_numbers: torch.Tensor, type_map: list[str] | None, name: str
) -> None:
    """Raise :class:`UserError` for an element outside ``type_map``."""
    if type_map is None:
        return
    known = set(type_map)
    for z in torch.unique(atomic_numbers).tolist():
        symbol = chemical_symbols[int(z)]
        if symbol not in known:
            raise UserError(
                f"element {symbol} is not in the {name}'s type_map "
                f"{type_map}; use a potential that knows {symbol}"
            )


class LennardJones(torch.nn.Module):
    r"""Lennard-Jones pair potential with a cutoff.

    .. math:: V(r) = 4\epsilon[(\sigma/r)^{12} - (\sigma/r)^6]

    truncated at ``cutoff`` and made continuous in one of three ways:

    ``"energy_shift"``
        :math:`V(r) - V(r_c)`: the energy is continuous, the force jumps
        by :math:`V'(r_c)` at the cutoff (a small energy drift in NVE).
    ``"force_shift"``
        :math:`V(r) - V(r_c) - (r - r_c) V'(r_c)`: energy and force are
        continuous, so NVE conserves energy to the integrator's accuracy.
    ``"none"``
        plain truncation (energy jumps at the cutoff).

    Parameters
    ----------
    epsilon : float, eV
        Well depth.
    sigma : float, Å
        Distance at which the unshifted potential is zero.
    cutoff : float, Å
        Pairs at this distance or beyond do not interact.
    smoothing : str
        One of ``"energy_shift"`` (default), ``"force_shift"``, ``"none"``.
    type_map : list of str, optional
        Elements this potential accepts; ``None`` accepts every element.
    """

    def __init__(
        self,
        epsilon: float,
        sigma: float,
        cutoff: float,
        smoothing: str = "energy_shift",
        type_map: list[str] | None = None,
    ) -> None:
        super().__init__()
        if smoothing not in SMOOTHING:
            raise UserError(
                f"unknown Lennard-Jones smoothing {smoothing!r}; use one of "
                f"{', '.join(SMOOTHING)}"
            )
        if epsilon <= 0 or sigma <= 0 or cutoff <= 0:
            raise UserError(
                "Lennard-Jones epsilon, sigma and cutoff must be positive, got "
                f"{epsilon}, {sigma}, {cutoff}"
            )
        self.epsilon = float(epsilon)
        self.sigma = float(sigma)
        self.cutoff = float(cutoff)
        self.smoothing = smoothing
        self.type_map = None if type_map is None else list(type_map)
        v_c, dv_c = self._bare(torch.tensor(self.cutoff, dtype=torch.float64))
        self._v_cut = float(v_c) if smoothing != "none" else 0.0
        self._dv_cut = float(dv_c) if smoothing == "force_shift" else 0.0
        self._half_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return (
            f"epsilon={self.epsilon}, sigma={self.sigma}, cutoff={self.cutoff}, "
            f"smoothing={self.smoothing!r}"
        )

    def _bare(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unshifted V(r) and dV/dr."""
        s6 = (self.sigma / r) ** 6
        v = 4.0 * self.epsilon * (s6 * s6 - s6)
        dv = -24.0 * self.epsilon * (2.0 * s6 * s6 - s6) / r
        return v, dv

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        """Shifted pair energy for distances ``r`` (Å) below the cutoff, eV."""
        v, _ = self._bare(r)
        return v - self._v_cut - (r - self.cutoff) * self._dv_cut

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Energies of a batch of structures.

        Parameters
        ----------
        batch : dict
            The batch dictionary (positions (N,3) Å, atomic_numbers (N,),
            structure_index (N,), cell (S,3,3) Å, pbc (S,3)), optionally with
            a neighbour list whose cutoff is at least this potential's.

        Returns
        -------
        dict
            ``energy`` (S,) eV and ``atom_energy`` (N,) eV.
        """
        positions = batch["positions"]
        check_elements(batch["atomic_numbers"], self.type_map, "Lennard-Jones")
        pairs = batch_pairs(batch, self.cutoff)
        vectors = (
            positions[pairs.neighbors]
            - positions[pairs.centers]
            + _pair_translation(batch["cell"], batch["structure_index"], pairs)
        )
        r_sq = (vectors * vectors).sum(-1)
        keep = r_sq < self.cutoff**2
        r = torch.sqrt(r_sq[keep])
        # A full list counts every pair twice: half of each to either atom.
        atom_energy = torch.zeros_like(positions[:, 0]).index_add(
            0, pairs.centers[keep], 0.5 * self.pair_energy(r)
        )
        n_structures = batch["cell"].shape[0]
        energy = torch.zeros(
            n_structures, dtype=positions.dtype, device=positions.device
        ).index_add(0, batch["structure_index"], atom_energy)
        return {"energy": energy, "atom_energy": atom_energy}

    def _half_pairs(self, pairs: NeighborList) -> torch.Tensor:
        """Indices of one of the two copies of every pair of a full list."""
        cached = self._half_cache
        if cached is not None and cached[0] is pairs.centers:
            return cached[1]
        i, j, s = pairs.centers, pairs.neighbors, pairs.shifts
        # Keep i < j; for an atom paired with its own image keep the shift
        # whose first non-zero component is positive.
        first = torch.where(
            s[:, 0] != 0, s[:, 0], torch.where(s[:, 1] != 0, s[:, 1], s[:, 2])
        )
        keep = (i < j) | ((i == j) & (first > 0))
        index = torch.nonzero(keep).squeeze(1)
        self._half_cache = (pairs.centers, index)
        return index

    def energy_and_forces(
        self, batch: dict[str, torch.Tensor], virial: bool = False
    ) -> dict[str, torch.Tensor]:
        """Energies, forces and optionally virials by analytic derivatives.

        Same results as the shared autograd evaluation, faster: each pair is
        visited once.

        Parameters
        ----------
        batch : dict
            As for :meth:`forward`.
        virial : bool
            Also return ``virial`` (S,3,3) eV, W = -dE/d(strain).

        Returns
        -------
        dict
            ``energy`` (S,) eV, ``atom_energy`` (N,) eV, ``forces`` (N,3)
            eV/Å and, if asked, ``virial`` (S,3,3) eV.
        """
        positions = batch["positions"]
        structure_index = batch["structure_index"]
        check_elements(batch["atomic_numbers"], self.type_map, "Lennard-Jones")
        full = batch_pairs(batch, self.cutoff)
        half = self._half_pairs(full)
        centers, neighbors = full.centers[half], full.neighbors[half]
        pairs = NeighborList(centers, neighbors, full.shifts[half])
        vectors = (
            positions[neighbors]
            - positions[centers]
            + _pair_translation(batch["cell"], structure_index, pairs)
        )  # [n_half_pairs, 3]
        r_sq = (vectors * vectors).sum(-1)
        inside = r_sq < self.cutoff**2

        # Work on every pair with a mask rather than compacting the list:
        # cheaper than a gather for the usual 60-70 % of pairs inside.
        far = torch.full_like(r_sq, 4.0 * self.cutoff**2)
        r_sq = torch.where(inside, r_sq, far)
        inv_r2 = (self.sigma * self.sigma) / r_sq
        s6 = inv_r2 * inv_r2 * inv_r2
        r = torch.sqrt(r_sq)
        pair_e = 4.0 * self.epsilon * (s6 * s6 - s6) - self._v_cut
        dv_over_r = -24.0 * self.epsilon * (2.0 * s6 * s6 - s6) / r_sq
        if self._dv_cut != 0.0:
            pair_e = pair_e - (r - self.cutoff) * self._dv_cut
            dv_over_r = dv_over_r - self._dv_cut / r
        zero = torch.zeros_like(pair_e)
        pair_e = torch.where(inside, pair_e, zero)
        dv_over_r = torch.where(inside, dv_over_r, zero)

        half_e = 0.5 * pair_e
        atom_energy = torch.zeros_like(positions[:, 0])
        atom_energy.index_add_(0, centers, half_e).index_add_(0, neighbors, half_e)
        pair_force = dv_over_r[:, None] * vectors  # force on the centre
        forces = torch.zeros_like(positions)
        forces.index_add_(0, centers, pair_force).index_add_(0, neighbors, -pair_force)
        n_structures = batch["cell"].shape[0]
        energy = torch.zeros(
            n_structures, dtype=positions.dtype, device=positions.device
        ).index_add_(0, structure_index, atom_energy)
        out = {"energy": energy, "atom_energy": atom_energy, "forces": forces}
        if virial:
            # W_ab = -sum_pairs r_a dV/dr_b = -sum dV/dr / r * r_a r_b
            weighted = (-dv_over_r)[:, None] * vectors
            outer = weighted[:, :, None] * vectors[:, None, :]  # [n_pairs, 3, 3]
            out["virial"] = torch.zeros(
                n_structures, 3, 3, dtype=positions.dtype, device=positions.device
            ).index_add_(0, structure_index[centers], outer)
        return out


class SumPotential(torch.nn.Module):
    """The sum of several potentials (e.g. a prior plus a learned correction).

    Parameters
    ----------
    terms : sequence of potentials
        Each follows the potential protocol. The sum's cutoff is the largest
        of theirs; its type map is the intersection of theirs (``None`` if
        every term accepts any element).
    """

    def __init__(self, terms: list[torch.nn.Module]) -> None:
        super().__init__()
        if len(terms) == 0:
            raise UserError("a sum of potentials needs at least one term")
        self.terms = torch.nn.ModuleList(terms)
        self.cutoff = max(float(t.cutoff) for t in terms)
        maps = [t.type_map for t in terms if getattr(t, "type_map", None) is not None]
        if maps:
            self.type_map = [e for e in maps[0] if all(e in m for m in maps[1:])]
        else:
            self.type_map = None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum of the terms' ``energy`` (S,) and ``atom_energy`` (N,), eV."""
        results = [term(batch) for term in self.terms]
        return {
            "energy": sum(r["energy"] for r in results),
            "atom_energy": sum(r["atom_energy"] for r in results),
        }

    def energy_and_forces(
        self, batch: dict[str, torch.Tensor], virial: bool = False
    ) -> dict[str, torch.Tensor]:
        """Energies, forces (and virials) of the sum, term by term.

        Each term uses its own analytic derivatives where it has them and the
        shared autograd evaluation otherwise. Returns the same keys as
        :meth:`LennardJones.energy_and_forces`.
        """
        from deepmd_like.md.forces import compute_forces

        results = [compute_forces(term, batch, virial=virial) for term in self.terms]
        return {
            key: sum(r[key] for r in results)
            for key in results[0]
        }
