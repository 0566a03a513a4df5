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
from deepmd_like.nn.cell_list import half_pairs_of
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
    compile : bool
        Fuse the analytic force kernel with ``torch.compile`` (needs a C++
        compiler; the first call takes tens of seconds, later calls are
        several times faster on large systems).
    """

    # The engine may hand this potential a half neighbour list.
    uses_half_list = True

    def __init__(
        self,
        epsilon: float,
        sigma: float,
        cutoff: float,
        smoothing: str = "energy_shift",
        type_map: list[str] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.compile = bool(compile)
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
        self._half_cache: dict | None = None

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

    def _pair_data(self, batch: dict[str, torch.Tensor]) -> dict:
        """Half list and per-pair translations, cached while the list and
        the cells stay the same."""
        if "half_centers" in batch:
            centers = batch["half_centers"]
            key = centers
        else:
            full = batch_pairs(batch, self.cutoff)
            key = full.centers
        cache = self._half_cache
        if cache is None or cache["key"] is not key:
            if "half_centers" in batch:
                i, j = batch["half_centers"], batch["half_neighbors"]
                shifts = batch["half_shifts"]
            else:
                keep = half_pairs_of(full.centers, full.neighbors, full.shifts)
                i, j = full.centers[keep], full.neighbors[keep]
                shifts = full.shifts[keep]
            cache = {
                "key": key,
                "i": i.contiguous(),
                "j": j.contiguous(),
                "shifts": shifts,
                "cell": None,
                "pair_structure": batch["structure_index"][i],
            }
            self._half_cache = cache
        cell = batch["cell"]
        if cache["cell"] is None or not torch.equal(cache["cell"], cell):
            pairs = NeighborList(cache["i"], cache["j"], cache["shifts"])
            translation = _pair_translation(cell, batch["structure_index"], pairs)
            cache["translation"] = translation.T.contiguous()  # [3, n_pairs]
            cache["cell"] = cell.clone()
        return cache

    def energy_and_forces(
        self, batch: dict[str, torch.Tensor], virial: bool = False
    ) -> dict[str, torch.Tensor]:
        """Energies, forces and optionally virials by analytic derivatives.

        Same results as the shared autograd evaluation, faster: each pair is
        visited once, in one fused kernel when the potential was built with
        ``compile=True``. A batch may carry a half list (``half_centers``,
        ``half_neighbors``, ``half_shifts``: each pair once) instead of the
        full one.

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
        pairs = self._pair_data(batch)
        n_structures = batch["cell"].shape[0]
        px, py, pz = positions.detach().T.contiguous()
        tx, ty, tz = pairs["translation"]
        kernel = self._kernel()
        fx, fy, fz, atom_energy, pair_virial = kernel(
            px, py, pz, pairs["i"], pairs["j"], tx, ty, tz,
            pairs["pair_structure"], positions.shape[0], n_structures,
            self.epsilon, self.sigma, self.cutoff, self._v_cut, self._dv_cut,
            virial,
        )
        energy = torch.zeros(
            n_structures, dtype=positions.dtype, device=positions.device
        ).index_add_(0, structure_index, atom_energy)
        out = {
            "energy": energy,
            "atom_energy": atom_energy,
            "forces": torch.stack([fx, fy, fz], 1),
        }
        if virial:
            out["virial"] = pair_virial.reshape(n_structures, 3, 3)
        return out

    def _kernel(self):
        if not self.compile:
            return _lj_kernel
        global _COMPILED_KERNEL
        if _COMPILED_KERNEL is None:
            _COMPILED_KERNEL = torch.compile(_lj_kernel, dynamic=True)
        return _COMPILED_KERNEL


_COMPILED_KERNEL = None


def _lj_kernel(
    px: torch.Tensor,
    py: torch.Tensor,
    pz: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    tx: torch.Tensor,
    ty: torch.Tensor,
    tz: torch.Tensor,
    pair_structure: torch.Tensor,
    n_atoms: int,
    n_structures: int,
    epsilon: float,
    sigma: float,
    cutoff: float,
    v_cut: float,
    dv_cut: float,
    virial: bool,
) -> tuple[torch.Tensor, ...]:
    """Lennard-Jones forces on a half list, one coordinate at a time.

    Separate x, y, z arrays avoid slow strided (n_pairs, 3) operations; the
    function is also written so that ``torch.compile`` fuses it into one
    loop. Returns forces (x, y, z components, (N,) eV/Å), atom energies
    (N,) eV and the virial (S, 9) eV (empty unless ``virial``).
    """
    dx = px[j] - px[i] + tx
    dy = py[j] - py[i] + ty
    dz = pz[j] - pz[i] + tz
    r_sq = dx * dx + dy * dy + dz * dz
    inside = r_sq < cutoff * cutoff
    r_sq = torch.where(inside, r_sq, torch.full_like(r_sq, 4.0 * cutoff * cutoff))
    s2 = (sigma * sigma) / r_sq
    s6 = s2 * s2 * s2
    pair_energy = 4.0 * epsilon * (s6 * s6 - s6) - v_cut
    dv_over_r = -24.0 * epsilon * (2.0 * s6 * s6 - s6) / r_sq
    if dv_cut != 0.0:
        r = torch.sqrt(r_sq)
        pair_energy = pair_energy - (r - cutoff) * dv_cut
        dv_over_r = dv_over_r - dv_cut / r
    zero = torch.zeros_like(r_sq)
    half_energy = torch.where(inside, 0.5 * pair_energy, zero)
    dv_over_r = torch.where(inside, dv_over_r, zero)

    # Force on the centre is dV/dr * r_ij / r; the neighbour gets minus that.
    gx, gy, gz = dv_over_r * dx, dv_over_r * dy, dv_over_r * dz
    fx = torch.zeros(n_atoms, dtype=px.dtype, device=px.device)
    fy = torch.zeros_like(fx)
    fz = torch.zeros_like(fx)
    fx = fx.index_add(0, i, gx).index_add(0, j, -gx)
    fy = fy.index_add(0, i, gy).index_add(0, j, -gy)
    fz = fz.index_add(0, i, gz).index_add(0, j, -gz)
    atom_energy = torch.zeros_like(fx).index_add(0, i, half_energy)
    atom_energy = atom_energy.index_add(0, j, half_energy)
    if virial:
        # W_ab = -sum_pairs dV/dr / r * r_a * r_b
        components = torch.stack(
            [-gx * dx, -gx * dy, -gx * dz,
             -gy * dx, -gy * dy, -gy * dz,
             -gz * dx, -gz * dy, -gz * dz], 1
        )  # [n_pairs, 9]
        pair_virial = torch.zeros(
            n_structures, 9, dtype=px.dtype, device=px.device
        ).index_add(0, pair_structure, components)
    else:
        pair_virial = torch.zeros(0, dtype=px.dtype, device=px.device)
    return fx, fy, fz, atom_energy, pair_virial


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
