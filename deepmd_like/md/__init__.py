"""Molecular dynamics in PyTorch: many replicas, one batched force call.

Public names:

- :class:`Simulation`: ASE ``Atoms`` in, ``run(n_steps, reporters)``, ASE
  ``Atoms`` out, ``state_dict()``/``load_state_dict()`` for exact restarts.
- Integrators: :class:`VelocityVerlet` (NVE), :class:`Langevin` (BAOAB),
  :class:`Bussi` (stochastic velocity rescaling), :class:`NoseHooverChain`,
  :class:`StochasticCellRescaling` (NPT).
- Potentials: :class:`LennardJones`, :class:`SumPotential`.
- :class:`MDState`, :class:`VerletList`, :class:`Reporter` (protocol).
"""

from deepmd_like.md.integrators import (
    Bussi,
    Langevin,
    NoseHooverChain,
    StochasticCellRescaling,
    VelocityVerlet,
)
from deepmd_like.md.potentials import LennardJones, SumPotential
from deepmd_like.md.simulation import Reporter, Simulation
from deepmd_like.md.state import MDState, state_from_atoms, state_to_atoms
from deepmd_like.md.verlet import VerletList

__all__ = [
    "Bussi",
    "Langevin",
    "LennardJones",
    "MDState",
    "NoseHooverChain",
    "Reporter",
    "Simulation",
    "StochasticCellRescaling",
    "SumPotential",
    "VelocityVerlet",
    "VerletList",
    "state_from_atoms",
    "state_to_atoms",
]
