"""Molecules for variational Monte Carlo: nuclei, charge, spin and electrons.

Everything inside :mod:`deepmd_like.qmc` is in Hartree atomic units (bohr,
Hartree). A :class:`Molecule` is built from a user's description, where the
length unit is required, and checks that the charge and spin describe a
possible state before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from ase.data import atomic_numbers as _ATOMIC_NUMBERS
from ase.data import chemical_symbols as _SYMBOLS

from deepmd_like.errors import UserError
from deepmd_like.units import BOHR_IN_ANGSTROM

# Length units accepted for nuclear positions, as multiples of one bohr.
_LENGTH_IN_BOHR = {
    "bohr": 1.0,
    "au": 1.0,
    "angstrom": 1.0 / BOHR_IN_ANGSTROM,
    "ang": 1.0 / BOHR_IN_ANGSTROM,
    "a": 1.0 / BOHR_IN_ANGSTROM,
    "å": 1.0 / BOHR_IN_ANGSTROM,
}


@dataclass(frozen=True)
class Molecule:
    """Nuclei and electrons of a molecule, in bohr.

    Parameters
    ----------
    symbols : tuple of str
        Element symbols, one per nucleus.
    charges : (n_atoms,) tuple of int
        Nuclear charges Z.
    positions : (n_atoms, 3) tuple of tuples, bohr
        Nuclear positions.
    charge : int
        Total charge of the molecule (e).
    spin : int
        Number of unpaired electrons, 2S = n_up - n_down (PySCF's convention).
    """

    symbols: tuple[str, ...]
    charges: tuple[int, ...]
    positions: tuple[tuple[float, float, float], ...]
    charge: int = 0
    spin: int = 0

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def n_electrons(self) -> int:
        return sum(self.charges) - self.charge

    @property
    def n_up(self) -> int:
        return (self.n_electrons + self.spin) // 2

    @property
    def n_down(self) -> int:
        return (self.n_electrons - self.spin) // 2

    def positions_tensor(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Nuclear positions as a ``(n_atoms, 3)`` tensor in bohr."""
        return torch.tensor(self.positions, dtype=dtype, device=device)

    def charges_tensor(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Nuclear charges as a ``(n_atoms,)`` tensor."""
        return torch.tensor(self.charges, dtype=dtype, device=device)

    def nuclear_repulsion(self) -> float:
        """Nucleus–nucleus Coulomb energy in Hartree."""
        energy = 0.0
        for i in range(self.n_atoms):
            for j in range(i):
                d = math.dist(self.positions[i], self.positions[j])
                energy += self.charges[i] * self.charges[j] / d
        return energy

    def formula(self) -> str:
        """Chemical formula in order of first appearance, e.g. ``LiH``, ``H2``."""
        counts: dict[str, int] = {}
        for symbol in self.symbols:
            counts[symbol] = counts.get(symbol, 0) + 1
        return "".join(s + (str(n) if n > 1 else "") for s, n in counts.items())


def make_molecule(
    atoms: Sequence[Sequence[Any]],
    unit: str | None,
    charge: int = 0,
    spin: int = 0,
    where: str = "system",
) -> Molecule:
    """Validate a user's description of a molecule and return it in bohr.

    Parameters
    ----------
    atoms : sequence of [symbol, x, y, z]
        One entry per nucleus; coordinates in ``unit``.
    unit : str
        ``bohr`` or ``angstrom``; required, so a number is never guessed.
    charge : int
        Total charge (e).
    spin : int
        Unpaired electrons 2S = n_up - n_down.
    where : str
        Name of the input (file and key) used in error messages.

    Raises
    ------
    UserError
        A missing or unknown unit, an unknown element, coincident nuclei, or a
        charge/spin combination no state can have.
    """
    if unit is None:
        raise UserError(
            f"{where}: coordinates have no unit; add 'unit: bohr' or "
            "'unit: angstrom' beside 'atoms'"
        )
    key = str(unit).strip().lower()
    if key not in _LENGTH_IN_BOHR:
        raise UserError(
            f"{where}.unit: unknown length unit {unit!r}; use 'bohr' or 'angstrom'"
        )
    factor = _LENGTH_IN_BOHR[key]
    if not atoms:
        raise UserError(f"{where}.atoms: no atoms given; list [symbol, x, y, z]")
    symbols, charges, positions = [], [], []
    for index, entry in enumerate(atoms):
        if not isinstance(entry, (list, tuple)) or len(entry) != 4:
            raise UserError(
                f"{where}.atoms[{index}]: expected [symbol, x, y, z], got {entry!r}"
            )
        symbol = str(entry[0]).strip()
        z = _ATOMIC_NUMBERS.get(symbol.capitalize())
        if z is None or z == 0:
            raise UserError(
                f"{where}.atoms[{index}]: unknown element {symbol!r}; "
                "use a chemical symbol such as H, He, Li"
            )
        try:
            xyz = tuple(float(v) * factor for v in entry[1:])
        except (TypeError, ValueError):
            raise UserError(
                f"{where}.atoms[{index}]: coordinates must be numbers, "
                f"got {entry[1:]!r}"
            ) from None
        if not all(math.isfinite(v) for v in xyz):
            raise UserError(f"{where}.atoms[{index}]: coordinates must be finite")
        symbols.append(_SYMBOLS[z])
        charges.append(z)
        positions.append(xyz)
    for i in range(len(positions)):
        for j in range(i):
            if math.dist(positions[i], positions[j]) < 1e-3:
                raise UserError(
                    f"{where}.atoms: atoms {j} and {i} coincide; nuclei must be "
                    "at least 1e-3 bohr apart"
                )
    charge, spin = _as_int(charge, f"{where}.charge"), _as_int(spin, f"{where}.spin")
    n_electrons = sum(charges) - charge
    if n_electrons < 1:
        raise UserError(
            f"{where}: charge {charge} leaves {n_electrons} electrons; "
            "at least one electron is needed"
        )
    if charge < -MAX_EXTRA_ELECTRONS:
        raise UserError(
            f"{where}: charge {charge} adds {-charge} electrons to the neutral "
            f"molecule; more than {MAX_EXTRA_ELECTRONS} extra electrons are not "
            "bound in the small molecules VMC is meant for"
        )
    if spin < 0 or spin > n_electrons or (n_electrons - spin) % 2:
        raise UserError(
            f"{where}: spin (2S = n_up - n_down) {spin} is impossible with "
            f"{n_electrons} electrons; use a value from 0 to {n_electrons} with "
            f"the parity of {n_electrons}"
        )
    return Molecule(tuple(symbols), tuple(charges), tuple(positions), charge, spin)


# Most extra electrons an anion may carry (charge >= -2).
MAX_EXTRA_ELECTRONS = 2


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{key}: expected an integer, got {value!r}")
    if int(value) != value:
        raise UserError(f"{key}: expected an integer, got {value!r}")
    return int(value)


def assign_electrons(molecule: Molecule) -> tuple[list[int], list[int]]:
    """Assign every electron to a nucleus, as spin up or down.

    Atoms are first made neutral, then the molecular charge is taken from
    (or given to) the atoms one electron at a time. Within each atom the spins
    alternate; electrons then flip, one at a time on the atom where a flip
    keeps that atom's spin most balanced, until the totals are n_up and
    n_down. Each loop changes a count by one towards a fixed target, so it
    always terminates.

    Returns
    -------
    up_atoms, down_atoms : list of int
        The nucleus index of each up and each down electron.
    """
    counts = list(molecule.charges)
    excess = molecule.charge
    order = sorted(range(molecule.n_atoms), key=lambda i: -molecule.charges[i])
    while excess != 0:
        progressed = False
        for i in order:
            if excess > 0 and counts[i] > 0:
                counts[i] -= 1
                excess -= 1
                progressed = True
            elif excess < 0:
                counts[i] += 1
                excess += 1
                progressed = True
            if excess == 0:
                break
        if not progressed:  # pragma: no cover - guarded by make_molecule
            raise UserError("cannot distribute the charge over the atoms")
    up = [(c + 1) // 2 for c in counts]
    down = [c // 2 for c in counts]
    while sum(up) < molecule.n_up:
        i = min(
            (k for k in range(len(counts)) if down[k] > 0),
            key=lambda k: (up[k] - down[k], k),
        )
        up[i] += 1
        down[i] -= 1
    while sum(up) > molecule.n_up:
        i = min(
            (k for k in range(len(counts)) if up[k] > 0),
            key=lambda k: (down[k] - up[k], k),
        )
        up[i] -= 1
        down[i] += 1
    up_atoms = [i for i in range(len(counts)) for _ in range(up[i])]
    down_atoms = [i for i in range(len(counts)) for _ in range(down[i])]
    return up_atoms, down_atoms


def initial_walkers(
    molecule: Molecule,
    n_walkers: int,
    generator: torch.Generator,
    width: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Electron positions scattered around the nuclei they are assigned to.

    Returns
    -------
    (n_walkers, n_electrons, 3) tensor, bohr
        Up electrons first, then down electrons.
    """
    up_atoms, down_atoms = assign_electrons(molecule)
    nuclei = molecule.positions_tensor(dtype, device)
    centres = nuclei[torch.tensor(up_atoms + down_atoms, dtype=torch.long)]
    noise = torch.randn(
        (n_walkers, molecule.n_electrons, 3),
        generator=generator,
        dtype=dtype,
        device=generator.device,
    ).to(device if device is not None else centres.device)
    return centres + width * noise
