"""Units: the one place where unit names and conversion factors live.

Internally the package uses ASE's conventions for potentials, data and MD
(eV, Å, fs, amu, K, e) and Hartree atomic units for wavefunctions. Converters
turn source units into these on the way in, with the factors below.
"""

from __future__ import annotations

import re

from ase import units as _ase

from deepmd_like.errors import UserError

# Energy units, as multiples of one eV.
ENERGY_UNITS: dict[str, float] = {
    "ev": 1.0,
    "mev": 1e-3,
    "hartree": _ase.Hartree,
    "ha": _ase.Hartree,
    "ry": _ase.Rydberg,
    "rydberg": _ase.Rydberg,
    "kcal/mol": _ase.kcal / _ase.mol,
    "kj/mol": _ase.kJ / _ase.mol,
}

# Length units, as multiples of one Å.
LENGTH_UNITS: dict[str, float] = {
    "angstrom": 1.0,
    "å": 1.0,
    "a": 1.0,
    "ang": 1.0,
    "bohr": _ase.Bohr,
    "nm": 10.0,
}

# Stress units, as multiples of one eV/Å^3.
STRESS_UNITS: dict[str, float] = {
    "ev/å^3": 1.0,
    "ev/a^3": 1.0,
    "ev/angstrom^3": 1.0,
    "gpa": _ase.GPa,
    "kbar": 0.1 * _ase.GPa,
    "bar": _ase.bar,
}

EV_PER_A3_TO_GPA = 1.0 / _ase.GPa
HARTREE_IN_EV = _ase.Hartree
BOHR_IN_ANGSTROM = _ase.Bohr
KB_EV_PER_K = _ase.kB
FS = _ase.fs  # one femtosecond in ASE time units


def _key(name: str) -> str:
    return re.sub(r"\s+", "", str(name)).lower().replace("**", "^")


def _lookup(table: dict[str, float], name: str, kind: str, flag: str) -> float:
    key = _key(name)
    if key in table:
        return table[key]
    known = sorted({k for k in table})
    raise UserError(
        f"unknown {kind} unit {name!r} for {flag}; use one of: {', '.join(known)}"
    )


def energy_factor(name: str) -> float:
    """Factor that converts an energy in unit ``name`` to eV."""
    return _lookup(ENERGY_UNITS, name, "energy", "--energy-unit")


def length_factor(name: str) -> float:
    """Factor that converts a length in unit ``name`` to Å."""
    return _lookup(LENGTH_UNITS, name, "length", "--length-unit")


def force_factor(name: str) -> float:
    """Factor that converts a force in unit ``name`` (energy/length) to eV/Å.

    The name is an energy unit and a length unit separated by the last ``/``,
    e.g. ``eV/Å``, ``Hartree/Bohr`` or ``kcal/mol/Å``.
    """
    key = _key(name)
    if "/" not in key:
        raise UserError(
            f"unknown force unit {name!r} for --force-unit; write it as "
            "ENERGY/LENGTH, e.g. eV/Å, Hartree/Bohr or kcal/mol/Å"
        )
    energy, length = key.rsplit("/", 1)
    if energy not in ENERGY_UNITS or length not in LENGTH_UNITS:
        raise UserError(
            f"unknown force unit {name!r} for --force-unit; write it as "
            "ENERGY/LENGTH, e.g. eV/Å, Hartree/Bohr or kcal/mol/Å"
        )
    return ENERGY_UNITS[energy] / LENGTH_UNITS[length]


def stress_factor(name: str) -> float:
    """Factor that converts a stress in unit ``name`` to eV/Å^3."""
    return _lookup(STRESS_UNITS, name, "stress", "--stress-unit")
