"""Neural wavefunctions and variational Monte Carlo for small molecules.

Hartree atomic units throughout (bohr, Hartree). The pieces:

- :mod:`~deepmd_like.qmc.system`: molecules, electron assignment, walkers;
- :mod:`~deepmd_like.qmc.ansatz`: FermiNet-style network, Slater–Jastrow;
- :mod:`~deepmd_like.qmc.hamiltonian`: local energy with an exact Laplacian;
- :mod:`~deepmd_like.qmc.sampler`: Metropolis–Hastings;
- :mod:`~deepmd_like.qmc.optimizer`: SPRING natural gradient and Adam;
- :mod:`~deepmd_like.qmc.stats`: reblocking error bars;
- :mod:`~deepmd_like.qmc.hartree_fock`: PySCF orbitals and references;
- :mod:`~deepmd_like.qmc.run`: a whole run with checkpoints.

This subpackage uses nothing else of ``deepmd_like`` except its errors,
units and file helpers.
"""

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions, SlaterJastrow
from deepmd_like.qmc.config import VMCConfig, load_config
from deepmd_like.qmc.hamiltonian import local_energy, potential_energy
from deepmd_like.qmc.sampler import MetropolisSampler
from deepmd_like.qmc.stats import reblock
from deepmd_like.qmc.system import Molecule, make_molecule

__all__ = [
    "FermiNet",
    "FermiNetOptions",
    "MetropolisSampler",
    "Molecule",
    "SlaterJastrow",
    "VMCConfig",
    "load_config",
    "local_energy",
    "make_molecule",
    "potential_energy",
    "reblock",
]
