"""The state of a batch of independent MD systems, held in tensors.

Units follow ASE: positions Å, momenta amu·Å/t with t = Å·sqrt(amu/eV)
(ASE's time unit, about 10.18 fs), masses amu, energies eV. One state can
hold many independent structures ("replicas"); their atoms are contiguous and
``structure_index`` says which structure each atom belongs to, so a single
batched force call advances all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms

from deepmd_like.errors import UserError
from deepmd_like.units import KB_EV_PER_K


@dataclass
class MDState:
    """Positions, momenta and everything else a step needs.

    Attributes
    ----------
    positions : (N, 3) float, Å
        Unwrapped positions (never wrapped back into the cell by the engine).
    momenta : (N, 3) float, amu·Å/t (ASE units)
    masses : (N,) float, amu
    atomic_numbers : (N,) int64
    structure_index : (N,) int64
        The structure (replica) of each atom; atoms of a structure are
        contiguous and structures are in order.
    cell : (S, 3, 3) float, Å
        Lattice vectors as rows; zeros for a structure without a box.
    pbc : (S, 3) bool
    frozen : (N,) bool
        Atoms held fixed (no motion, no degrees of freedom).
    forces : (N, 3) float, eV/Å
        Forces at ``positions`` (filled by the engine).
    energy : (S,) float, eV
        Potential energy at ``positions``.
    virial : (S, 3, 3) float, eV, or None
        W = -dE/d(strain) at ``positions`` where it was computed.
    step : int
        Steps taken so far.
    time_fs : float
        Simulated time so far, fs.
    generator : torch.Generator
        The source of every random number of the run (velocities, noise).
    """

    positions: torch.Tensor
    momenta: torch.Tensor
    masses: torch.Tensor
    atomic_numbers: torch.Tensor
    structure_index: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    frozen: torch.Tensor
    generator: torch.Generator
    forces: torch.Tensor | None = None
    energy: torch.Tensor | None = None
    virial: torch.Tensor | None = None
    step: int = 0
    time_fs: float = 0.0
    n_atoms: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.n_atoms = torch.bincount(
            self.structure_index, minlength=self.cell.shape[0]
        )

    @property
    def n_structures(self) -> int:
        return int(self.cell.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @property
    def device(self) -> torch.device:
        return self.positions.device

    def batch(self) -> dict[str, torch.Tensor]:
        """The batch dictionary of the potential protocol (no neighbour list)."""
        return {
            "positions": self.positions,
            "atomic_numbers": self.atomic_numbers,
            "structure_index": self.structure_index,
            "cell": self.cell,
            "pbc": self.pbc,
            "n_atoms": self.n_atoms,
        }

    def per_structure(self, values: torch.Tensor) -> torch.Tensor:
        """Sum per-atom ``values`` (N,) over each structure, giving (S,)."""
        out = torch.zeros(self.n_structures, dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.structure_index, values)

    def kinetic_energy(self) -> torch.Tensor:
        """Kinetic energy of each structure, (S,) eV."""
        p = self.momenta
        return self.per_structure(0.5 * (p * p).sum(1) / self.masses)

    def volume(self) -> torch.Tensor:
        """Cell volume of each structure, (S,) Å³ (nan without a full box)."""
        volume = torch.linalg.det(self.cell).abs()
        nan = torch.full_like(volume, float("nan"))
        return torch.where(self.pbc.all(1), volume, nan)


def _as_list(atoms: Atoms | list[Atoms]) -> list[Atoms]:
    if isinstance(atoms, Atoms):
        return [atoms]
    atoms = list(atoms)
    if not atoms or not all(isinstance(a, Atoms) for a in atoms):
        raise TypeError("expected an ase.Atoms or a non-empty list of them")
    return atoms


def state_from_atoms(
    atoms: Atoms | list[Atoms],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> MDState:
    """Build a state from one or many ASE ``Atoms``.

    Momenta are taken from the atoms (zero if they have none); masses from
    ``Atoms.get_masses()``; atoms fixed by an ASE ``FixAtoms`` constraint are
    frozen (other constraints are refused).

    Parameters
    ----------
    atoms : ase.Atoms or list of ase.Atoms
        The structures; each becomes one replica of the batch.
    device : torch.device or str, optional
        Where the state lives (default CPU).
    dtype : torch.dtype
        Floating-point type of positions, momenta and forces.
    seed : int
        Seed of the state's random number generator.

    Returns
    -------
    MDState
    """
    structures = _as_list(atoms)
    device = torch.device("cpu") if device is None else torch.device(device)
    positions, momenta, masses, numbers, index, frozen = [], [], [], [], [], []
    cells, pbcs = [], []
    for s, item in enumerate(structures):
        if len(item) == 0:
            raise UserError(f"structure {s} has no atoms")
        fixed = np.zeros(len(item), dtype=bool)
        for constraint in item.constraints:
            if not isinstance(constraint, FixAtoms):
                raise UserError(
                    f"structure {s} has a {type(constraint).__name__} constraint; "
                    "the MD engine supports only FixAtoms"
                )
            fixed[constraint.get_indices()] = True
        positions.append(item.get_positions())
        momenta.append(item.get_momenta() * ~fixed[:, None])
        masses.append(item.get_masses())
        numbers.append(item.get_atomic_numbers())
        index.append(np.full(len(item), s))
        frozen.append(fixed)
        pbc = np.asarray(item.pbc, dtype=bool)
        cell = np.asarray(item.cell[:], dtype=float)
        if pbc.any() and abs(np.linalg.det(cell)) < 1e-8:
            raise UserError(
                f"structure {s} is periodic along {pbc.tolist()} but its cell is "
                "singular; give three independent lattice vectors"
            )
        cells.append(cell)
        pbcs.append(pbc)

    def tensor(values: list, kind: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(values), dtype=kind, device=device)

    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return MDState(
        positions=tensor(positions, dtype),
        momenta=tensor(momenta, dtype),
        masses=tensor(masses, dtype),
        atomic_numbers=tensor(numbers, torch.long),
        structure_index=tensor(index, torch.long),
        cell=torch.as_tensor(np.stack(cells), dtype=dtype, device=device),
        pbc=torch.as_tensor(np.stack(pbcs), device=device),
        frozen=tensor(frozen, torch.bool),
        generator=generator,
    )


def state_to_atoms(state: MDState) -> list[Atoms]:
    """ASE ``Atoms`` for every structure of a state (positions unwrapped).

    Momenta are set on the atoms; frozen atoms carry a ``FixAtoms``.
    """
    out = []
    index = state.structure_index.cpu().numpy()
    positions = state.positions.detach().cpu().numpy()
    momenta = state.momenta.detach().cpu().numpy()
    masses = state.masses.detach().cpu().numpy()
    numbers = state.atomic_numbers.cpu().numpy()
    frozen = state.frozen.cpu().numpy()
    cells = state.cell.detach().cpu().numpy()
    pbcs = state.pbc.cpu().numpy()
    for s in range(state.n_structures):
        members = index == s
        atoms = Atoms(
            numbers=numbers[members],
            positions=positions[members],
            cell=cells[s],
            pbc=pbcs[s],
            masses=masses[members],
        )
        atoms.set_momenta(momenta[members], apply_constraint=False)
        if frozen[members].any():
            atoms.set_constraint(FixAtoms(indices=np.nonzero(frozen[members])[0]))
        out.append(atoms)
    return out


def degrees_of_freedom(state: MDState, remove_com_motion: bool) -> torch.Tensor:
    """Kinetic degrees of freedom of each structure, (S,) float.

    3 per moving atom, less 3 per structure whose centre-of-mass momentum is
    held at zero (only where no atom is frozen: frozen atoms already pin it).
    """
    moving = state.per_structure((~state.frozen).to(state.dtype))
    dof = 3.0 * moving
    if remove_com_motion:
        has_frozen = state.per_structure(state.frozen.to(state.dtype)) > 0
        dof = dof - 3.0 * (~has_frozen).to(state.dtype)
    return dof


def temperature(state: MDState, dof: torch.Tensor) -> torch.Tensor:
    """Instantaneous temperature 2K/(f k_B) of each structure, (S,) K."""
    return 2.0 * state.kinetic_energy() / (dof.clamp(min=1.0) * KB_EV_PER_K)
