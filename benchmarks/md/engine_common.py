"""Shared set-up of the engine benchmarks: liquid argon and in.lj systems."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import bulk

ARGON_EPSILON = 120.0 * units.kB  # eV (epsilon / k_B = 120 K)
ARGON_SIGMA = 3.4  # Å
ARGON_MASS = 39.95  # amu
RESULTS = Path(__file__).resolve().parent / "results"


def argon_liquid(density_g_cm3: float = 1.374, repeat: int = 6, jitter: float = 0.05,
                 seed: int = 0):
    """fcc argon (4 repeat^3 atoms) at a mass density, slightly jittered."""
    n_atoms = 4 * repeat**3
    volume = n_atoms * ARGON_MASS / (units.mol * density_g_cm3) * 1e24  # Å^3
    a = (volume ** (1 / 3)) / repeat
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.set_masses([ARGON_MASS] * n_atoms)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0.0, jitter, atoms.positions.shape)
    return atoms


def in_lj(n_cells: int):
    """LAMMPS's in.lj: fcc at reduced density 0.8442, 4 n_cells^3 atoms, in
    reduced units (epsilon = 1 eV, sigma = 1 Å, m = 1 amu)."""
    a = (4.0 / 0.8442) ** (1 / 3)
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(n_cells)
    atoms.set_masses([1.0] * len(atoms))
    return atoms


def machine() -> dict:
    """What the numbers were measured on."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": load,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path
