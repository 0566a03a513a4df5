"""The MD engine's Python API: a simulation of a batch of structures.

Example
-------
>>> from ase.build import bulk
>>> from deepmd_like.md import Simulation, Langevin, LennardJones
>>> atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(3)
>>> lj = LennardJones(epsilon=0.0104, sigma=3.4, cutoff=8.5)
>>> sim = Simulation(atoms, lj, Langevin(2.0, temperature_K=90.0), seed=1)
>>> sim.initialize_velocities(90.0)
>>> sim.run(100)
>>> final = sim.to_atoms()
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import torch
from ase import Atoms

from deepmd_like.md.forces import compute_forces
from deepmd_like.md.integrators import Integrator
from deepmd_like.md.state import (
    MDState,
    degrees_of_freedom,
    state_from_atoms,
    state_to_atoms,
    temperature,
)
from deepmd_like.md.verlet import VerletList
from deepmd_like.units import KB_EV_PER_K

logger = logging.getLogger(__name__)

STATE_FORMAT = "deepmd_like/md_state"
STATE_VERSION = 1


class Reporter(Protocol):
    """Anything that watches a run.

    ``report`` is called after every step whose number is a multiple of
    ``interval`` (and once for step 0 when a run starts from step 0), with
    the simulation and its observables (see :meth:`Simulation.observables`).
    ``close`` (optional) is called when :meth:`Simulation.run` ends.
    """

    interval: int

    def report(self, simulation: "Simulation", observables: dict) -> None: ...


class Simulation:
    """Molecular dynamics of one or many structures in one batch.

    Parameters
    ----------
    atoms : ase.Atoms or list of ase.Atoms
        The starting structures (positions, momenta, masses, cell, pbc;
        ``FixAtoms`` constraints freeze atoms). Each is an independent
        replica; all advance together with one force call per step.
    potential : torch.nn.Module
        A potential (``cutoff``, ``type_map``, ``forward(batch)``); one with
        ``energy_and_forces(batch, virial)`` is used through it, and one with
        ``uses_half_list = True`` gets each pair once (``half_centers``,
        ``half_neighbors``, ``half_shifts``) instead of the full list.
    integrator : Integrator
        :class:`VelocityVerlet`, :class:`Langevin`, :class:`Bussi`,
        :class:`NoseHooverChain` or :class:`StochasticCellRescaling`.
    skin : float, Å
        Verlet-list skin.
    seed : int
        Seed of the run's random number generator.
    remove_com_motion : bool
        Remove each structure's centre-of-mass momentum at the start and
        after every step (3 fewer degrees of freedom per structure).
    device : torch.device or str, optional
        Default: CPU, or the potential's device if it has parameters.
    dtype : torch.dtype
        float64 by default.
    """

    def __init__(
        self,
        atoms: Atoms | list[Atoms],
        potential: torch.nn.Module,
        integrator: Integrator,
        skin: float = 1.0,
        seed: int = 0,
        remove_com_motion: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if device is None:
            parameter = next(iter(potential.parameters()), None)
            device = parameter.device if parameter is not None else "cpu"
        self.single = isinstance(atoms, Atoms)
        self.state: MDState = state_from_atoms(atoms, device, dtype, seed)
        self.potential = potential
        self.integrator = integrator
        self.remove_com_motion = bool(remove_com_motion)
        self.neighbors = VerletList(
            float(potential.cutoff),
            skin,
            half=bool(getattr(potential, "uses_half_list", False)),
        )
        self.n_force_calls = 0
        self.force_seconds = 0.0  # in force calls, neighbour lists included
        self.neighbor_seconds = 0.0  # in neighbour-list updates
        self._next_virial = False
        self._any_frozen = bool(self.state.frozen.any())
        if self.remove_com_motion:
            self._remove_com()
        self.integrator.setup(self.state, self.remove_com_motion)
        self.dof = degrees_of_freedom(self.state, self.remove_com_motion)

    def set_integrator(self, integrator: Integrator) -> None:
        """Continue with another integrator (e.g. NVT equilibration, then NVE).

        The new integrator starts with its own bath variables; the state,
        the random generator and the neighbour list carry over.
        """
        self.integrator = integrator
        self.integrator.setup(self.state, self.remove_com_motion)
        self.state.virial = None if integrator.needs_virial else self.state.virial

    # -- forces -----------------------------------------------------------

    def compute_forces(self, virial: bool = False) -> None:
        """Refresh ``state.forces``, ``state.energy`` (and ``state.virial``)."""
        state = self.state
        start = time.perf_counter()
        pairs = self.neighbors.update(
            state.positions, state.cell, state.pbc, state.structure_index
        )
        self.neighbor_seconds += time.perf_counter() - start
        batch = state.batch()
        prefix = "half_" if self.neighbors.half else ""
        batch[prefix + "centers"] = pairs.centers
        batch[prefix + "neighbors"] = pairs.neighbors
        batch[prefix + "shifts"] = pairs.shifts
        out = compute_forces(self.potential, batch, virial=virial or self._next_virial)
        state.forces = out["forces"].to(state.dtype)
        if self._any_frozen:
            state.forces = state.forces * (~state.frozen)[:, None]
        state.energy = out["energy"].to(state.dtype)
        state.virial = out.get("virial")
        self.n_force_calls += 1
        self.force_seconds += time.perf_counter() - start

    def _ensure_forces(self, virial: bool = False) -> None:
        if self.state.forces is None or (virial and self.state.virial is None):
            self.compute_forces(virial=virial)

    def _remove_com(self) -> None:
        state = self.state
        total = torch.zeros(
            state.n_structures, 3, dtype=state.dtype, device=state.device
        ).index_add_(0, state.structure_index, state.momenta)
        moving = (~state.frozen).to(state.dtype)
        mass = state.per_structure(state.masses * moving)
        velocity = total / mass.clamp(min=1e-300)[:, None]
        state.momenta.sub_(
            (state.masses * moving)[:, None] * velocity[state.structure_index]
        )

    # -- set-up ---------------------------------------------------------

    def initialize_velocities(self, temperature_K: float, exact: bool = False) -> None:
        """Draw Maxwell–Boltzmann momenta at ``temperature_K`` from the seed.

        Parameters
        ----------
        temperature_K : float
            Temperature, K.
        exact : bool
            Rescale each structure to exactly this instantaneous temperature.
        """
        state = self.state
        kT = KB_EV_PER_K * float(temperature_K)
        noise = torch.randn(
            state.momenta.shape,
            generator=state.generator,
            dtype=state.dtype,
            device=state.device,
        )
        state.momenta = noise * torch.sqrt(state.masses * kT)[:, None]
        state.momenta = state.momenta * (~state.frozen)[:, None]
        if self.remove_com_motion:
            self._remove_com()
        if exact and temperature_K > 0:
            current = temperature(state, self.dof).clamp(min=1e-300)
            scale = torch.sqrt(float(temperature_K) / current)
            state.momenta = state.momenta * scale[state.structure_index][:, None]

    # -- running --------------------------------------------------------

    def observables(self) -> dict:
        """Thermodynamic observables of the current state.

        Returns
        -------
        dict
            ``step`` int; ``time_fs`` float; per structure (S,) tensors:
            ``potential_energy`` eV, ``kinetic_energy`` eV, ``total_energy``
            eV, ``temperature`` K, ``conserved_energy`` eV (total plus the
            heat given to the bath), ``volume`` Å³ and ``pressure`` eV/Å³
            (nan where the structure is not fully periodic).
        """
        state = self.state
        periodic = bool(state.pbc.all(1).any())
        self._ensure_forces(virial=periodic)
        kinetic = state.kinetic_energy()
        total = state.energy + kinetic
        volume = state.volume()
        if state.virial is not None:
            trace = state.virial.diagonal(dim1=1, dim2=2).sum(1)
            pressure = (2.0 * kinetic + trace) / (3.0 * volume)
        else:
            pressure = torch.full_like(kinetic, float("nan"))
        heat = getattr(self.integrator, "heat", None)
        return {
            "step": state.step,
            "time_fs": state.time_fs,
            "potential_energy": state.energy,
            "kinetic_energy": kinetic,
            "total_energy": total,
            "temperature": temperature(state, self.dof),
            "conserved_energy": total + heat if heat is not None else total,
            "volume": volume,
            "pressure": pressure,
        }

    def step(self) -> None:
        """Advance every structure by one time step."""
        self._ensure_forces(virial=self.integrator.needs_virial)
        self.integrator.step(self.state, self.compute_forces)
        if self.remove_com_motion:
            before = self.state.kinetic_energy()
            self._remove_com()
            heat = getattr(self.integrator, "heat", None)
            if heat is not None:
                heat += before - self.state.kinetic_energy()
        self.state.step += 1
        self.state.time_fs += self.integrator.timestep_fs

    def run(self, n_steps: int, reporters: list[Reporter] | tuple = ()) -> None:
        """Take ``n_steps`` steps, calling reporters on their intervals.

        Parameters
        ----------
        n_steps : int
            Number of steps.
        reporters : list of Reporter
            Each is called after steps that are multiples of its
            ``interval`` (and at step 0 if the run starts there).
        """
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        reporters = list(reporters)
        intervals = [max(1, int(r.interval)) for r in reporters]
        state = self.state
        if state.step == 0 and reporters:
            observables = self.observables()
            for reporter in reporters:
                reporter.report(self, observables)
        try:
            for _ in range(int(n_steps)):
                upcoming = state.step + 1
                self._next_virial = any(upcoming % k == 0 for k in intervals)
                self.step()
                due = [r for r, k in zip(reporters, intervals) if state.step % k == 0]
                if due:
                    observables = self.observables()
                    for reporter in due:
                        reporter.report(self, observables)
        finally:
            self._next_virial = False
            for reporter in reporters:
                close = getattr(reporter, "close", None)
                if close is not None:
                    close()

    # -- output and restarts -----------------------------------------------

    def to_atoms(self) -> Atoms | list[Atoms]:
        """The current structures as ASE ``Atoms`` (one, or a list if many
        were given)."""
        atoms = state_to_atoms(self.state)
        return atoms[0] if self.single else atoms

    def state_dict(self) -> dict:
        """Everything needed to continue the run exactly (tensors on CPU)."""
        state = self.state

        def cpu(value):
            return None if value is None else value.detach().cpu().clone()

        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": state.step,
            "time_fs": state.time_fs,
            "positions": cpu(state.positions),
            "momenta": cpu(state.momenta),
            "cell": cpu(state.cell),
            "masses": cpu(state.masses),
            "atomic_numbers": cpu(state.atomic_numbers),
            "structure_index": cpu(state.structure_index),
            "pbc": cpu(state.pbc),
            "frozen": cpu(state.frozen),
            "forces": cpu(state.forces),
            "energy": cpu(state.energy),
            "virial": cpu(state.virial),
            "generator": state.generator.get_state().clone(),
            "integrator": {
                key: cpu(value) if isinstance(value, torch.Tensor) else value
                for key, value in self.integrator.state_dict().items()
            },
            "neighbors": {
                key: cpu(value) if isinstance(value, torch.Tensor) else value
                for key, value in self.neighbors.state_dict().items()
            },
        }

    def load_state_dict(self, saved: dict) -> None:
        """Continue from :meth:`state_dict` of a run with the same set-up."""
        if saved.get("format") != STATE_FORMAT:
            raise ValueError(f"not an MD state (format {saved.get('format')!r})")
        if int(saved.get("version", 0)) > STATE_VERSION:
            raise ValueError(
                f"MD state version {saved['version']} is newer than this "
                f"program's {STATE_VERSION}; upgrade deepmd_like"
            )
        state = self.state
        if saved["positions"].shape != state.positions.shape or not torch.equal(
            saved["atomic_numbers"].to(state.device), state.atomic_numbers
        ):
            raise ValueError(
                "the saved MD state has different atoms than this simulation"
            )

        def put(value, dtype=None):
            if value is None:
                return None
            return value.to(device=state.device, dtype=dtype or value.dtype).clone()

        state.positions = put(saved["positions"], state.dtype)
        state.momenta = put(saved["momenta"], state.dtype)
        state.cell = put(saved["cell"], state.dtype)
        state.masses = put(saved["masses"], state.dtype)
        state.frozen = put(saved["frozen"])
        self._any_frozen = bool(state.frozen.any())
        state.forces = put(saved["forces"], state.dtype)
        state.energy = put(saved["energy"], state.dtype)
        state.virial = put(saved["virial"], state.dtype)
        state.step = int(saved["step"])
        state.time_fs = float(saved["time_fs"])
        state.generator.set_state(saved["generator"])
        self.integrator.setup(state, self.remove_com_motion)
        self.integrator.load_state_dict(
            {
                key: put(value) if isinstance(value, torch.Tensor) else value
                for key, value in saved["integrator"].items()
            }
        )
        neighbors = {
            key: put(value, state.dtype) if isinstance(value, torch.Tensor) else value
            for key, value in saved["neighbors"].items()
        }
        self.neighbors.load_state_dict(neighbors, state.pbc, state.structure_index)
        self.dof = degrees_of_freedom(state, self.remove_com_motion)
