"""Integrators and thermostats: NVE, Langevin (BAOAB), Nosé–Hoover chain,
stochastic velocity rescaling (Bussi) and stochastic cell rescaling (NPT).

Every integrator advances a whole :class:`~deepmd_like.md.state.MDState` by
one step with ``step(state, compute)``, where ``compute(need_virial)``
refreshes ``state.forces``, ``state.energy`` (and ``state.virial``) at the
current positions. Random numbers come only from ``state.generator``.
Thermostats work per structure, so replicas stay independent.

Each integrator counts the energy it exchanges with its bath in ``heat``
(S,) eV (energy taken out of the system), so ``E_pot + E_kin + heat`` is
conserved to the accuracy of the integration (the "effective energy" of
Bussi et al.), a check on any thermostatted run.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from deepmd_like.errors import UserError
from deepmd_like.md.state import MDState, degrees_of_freedom
from deepmd_like.units import EV_PER_A3_TO_GPA, FS, KB_EV_PER_K

ForceCall = Callable[[bool], None]


class Integrator(Protocol):
    """What the simulation needs from an integrator."""

    timestep_fs: float
    needs_virial: bool

    def setup(self, state: MDState, remove_com_motion: bool) -> None: ...

    def step(self, state: MDState, compute: ForceCall) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive number, got {value}")
    return value


class VelocityVerlet:
    """Velocity Verlet (NVE).

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.
    """

    needs_virial = False

    def __init__(self, timestep_fs: float) -> None:
        self.timestep_fs = _positive("timestep_fs", timestep_fs)
        self.dt = self.timestep_fs * FS
        self.heat: torch.Tensor | None = None

    def setup(self, state: MDState, remove_com_motion: bool) -> None:
        """Prepare per-structure variables for ``state``."""
        self.dof = degrees_of_freedom(state, remove_com_motion)
        if self.heat is None or self.heat.shape[0] != state.n_structures:
            self.heat = torch.zeros(
                state.n_structures, dtype=state.dtype, device=state.device
            )
        self._moving = (~state.frozen).to(state.dtype)[:, None]
        self._any_frozen = bool(state.frozen.any())
        self._inv_mass = 1.0 / state.masses[:, None]

    def _kick(self, state: MDState, dt: float) -> None:
        state.momenta.add_(state.forces, alpha=dt)
        if self._any_frozen:
            state.momenta.mul_(self._moving)

    def _drift(self, state: MDState, dt: float) -> None:
        state.positions.add_(state.momenta * self._inv_mass, alpha=dt)

    def _thermostat(self, state: MDState, dt: float) -> None:
        """Bath coupling over ``dt``; none for NVE."""

    def step(self, state: MDState, compute: ForceCall) -> None:
        """One step: kick, drift, force, kick (thermostat halves around it)."""
        half = 0.5 * self.dt
        self._thermostat(state, half)
        self._kick(state, half)
        self._drift(state, self.dt)
        compute(self.needs_virial)
        self._kick(state, half)
        self._thermostat(state, half)

    def state_dict(self) -> dict:
        return {"heat": self.heat}

    def load_state_dict(self, state: dict) -> None:
        self.heat = state["heat"].clone()


class Langevin(VelocityVerlet):
    """Langevin dynamics in the BAOAB splitting (Leimkuhler & Matthews 2013).

    Kick (B), half drift (A), exact Ornstein–Uhlenbeck velocity update (O),
    half drift, force, kick. Configurational averages are exact to second
    order in the time step, and the O step samples the Maxwell–Boltzmann
    distribution exactly.

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.
    temperature_K : float
        Bath temperature, K.
    friction_per_fs : float
        Friction coefficient gamma, 1/fs (0.01/fs = 1/(100 fs)).
    """

    def __init__(
        self, timestep_fs: float, temperature_K: float, friction_per_fs: float = 0.01
    ) -> None:
        super().__init__(timestep_fs)
        self.temperature_K = _positive("temperature_K", temperature_K)
        self.friction_per_fs = _positive("friction_per_fs", friction_per_fs)

    def setup(self, state: MDState, remove_com_motion: bool) -> None:
        super().setup(state, remove_com_motion)
        kT = KB_EV_PER_K * self.temperature_K
        self._c1 = math.exp(-self.friction_per_fs * self.timestep_fs)
        self._noise_scale = torch.sqrt((1.0 - self._c1**2) * kT * state.masses)[:, None]

    def step(self, state: MDState, compute: ForceCall) -> None:
        half = 0.5 * self.dt
        self._kick(state, half)
        self._drift(state, half)

        before = state.kinetic_energy()
        noise = torch.randn(
            state.momenta.shape,
            generator=state.generator,
            dtype=state.dtype,
            device=state.device,
        )
        state.momenta.mul_(self._c1).add_(self._noise_scale * noise)
        if self._any_frozen:
            state.momenta.mul_(self._moving)
        self.heat += before - state.kinetic_energy()

        self._drift(state, half)
        compute(self.needs_virial)
        self._kick(state, half)


def _sum_of_squared_normals(
    owner: torch.Tensor, n: int, state: MDState
) -> torch.Tensor:
    """For each of ``n`` structures, a sum of squared standard normals, one
    for each entry of ``owner`` that names it."""
    noise = torch.randn(
        owner.shape[0],
        generator=state.generator,
        dtype=state.dtype,
        device=state.device,
    )
    out = torch.zeros(n, dtype=state.dtype, device=state.device)
    return out.index_add_(0, owner, noise * noise)


class Bussi(VelocityVerlet):
    """Stochastic velocity rescaling (Bussi, Donadio & Parrinello 2007).

    The kinetic energy of each structure follows the exact solution of its
    stochastic differential equation over half a step before and after a
    velocity-Verlet step; momenta are rescaled accordingly. Samples the
    canonical ensemble with almost no disturbance of the dynamics.

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.
    temperature_K : float
        Bath temperature, K.
    tau_fs : float
        Relaxation time of the kinetic energy, fs.
    """

    def __init__(
        self, timestep_fs: float, temperature_K: float, tau_fs: float = 100.0
    ) -> None:
        super().__init__(timestep_fs)
        self.temperature_K = _positive("temperature_K", temperature_K)
        self.tau_fs = _positive("tau_fs", tau_fs)

    def setup(self, state: MDState, remove_com_motion: bool) -> None:
        super().setup(state, remove_com_motion)
        counts = self.dof.round().long().clamp(min=1) - 1
        self._owner = torch.repeat_interleave(
            torch.arange(state.n_structures, device=state.device), counts
        )

    def _thermostat(self, state: MDState, dt: float) -> None:
        kinetic = state.kinetic_energy()
        dof = self.dof.clamp(min=1.0)
        target = 0.5 * dof * KB_EV_PER_K * self.temperature_K
        decay = math.exp(-dt / (self.tau_fs * FS))
        first = torch.randn(
            state.n_structures,
            generator=state.generator,
            dtype=state.dtype,
            device=state.device,
        )
        rest = _sum_of_squared_normals(self._owner, state.n_structures, state)
        ratio = target / dof
        safe_k = kinetic.clamp(min=1e-300)
        # K' = (sqrt(c K) + R1 sqrt((1-c) K_t/f))^2 + (1-c) K_t/f sum_{i>1} R_i^2
        new = (
            math.sqrt(decay) * torch.sqrt(safe_k)
            + first * torch.sqrt((1.0 - decay) * ratio)
        ) ** 2 + (1.0 - decay) * ratio * rest
        scale = torch.sqrt(new / safe_k)
        scale = torch.where(kinetic > 0, scale, torch.ones_like(scale))
        state.momenta.mul_(scale[state.structure_index][:, None])
        self.heat += kinetic - state.kinetic_energy()


class NoseHooverChain(VelocityVerlet):
    """Nosé–Hoover chain thermostat (Martyna, Klein & Tuckerman 1992).

    Integrated with the Trotter factorisation of Martyna, Tuckerman, Tobias
    & Klein (1996) around a velocity-Verlet step, optionally with
    Suzuki–Yoshida weights. By default there is one chain per structure,
    coupled to its total kinetic energy; with ``massive=True`` every
    Cartesian degree of freedom has its own chain. Like every deterministic
    thermostat it relies on the system's own chaos: a global chain is not
    ergodic for free particles, and no chain is for a harmonic oscillator
    (Patra & Bhattacharya 2014); use :class:`Langevin` or :class:`Bussi`
    for such systems.

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.
    temperature_K : float
        Bath temperature, K.
    tau_fs : float
        Period of the thermostat's oscillation, fs; the chain masses are
        Q_1 = f k_B T tau^2 (f the degrees of freedom the chain acts on) and
        Q_k = k_B T tau^2.
    chain_length : int
        Number of thermostats in a chain.
    n_substeps : int
        Multiple time steps per half step.
    yoshida_order : int
        1, 3 or 5 Suzuki–Yoshida weights.
    massive : bool
        One chain per degree of freedom instead of one per structure.
    """

    _WEIGHTS = {
        1: [],
        3: [1.0 / (2.0 - 2.0 ** (1 / 3))] * 2,
        5: [1.0 / (4.0 - 4.0 ** (1 / 3))] * 4,
    }

    def __init__(
        self,
        timestep_fs: float,
        temperature_K: float,
        tau_fs: float = 100.0,
        chain_length: int = 3,
        n_substeps: int = 1,
        yoshida_order: int = 1,
        massive: bool = False,
    ) -> None:
        super().__init__(timestep_fs)
        self.temperature_K = _positive("temperature_K", temperature_K)
        self.tau_fs = _positive("tau_fs", tau_fs)
        if chain_length < 1 or n_substeps < 1:
            raise UserError("chain_length and n_substeps must be >= 1")
        if yoshida_order not in self._WEIGHTS:
            raise UserError(f"yoshida_order must be 1, 3 or 5, got {yoshida_order}")
        self.chain_length = int(chain_length)
        self.n_substeps = int(n_substeps)
        self.massive = bool(massive)
        w = list(self._WEIGHTS[yoshida_order])
        w.insert(len(w) // 2, 1.0 - sum(w))
        self._weights = w
        self.chain_velocity: torch.Tensor | None = None
        self.chain_position: torch.Tensor | None = None

    def setup(self, state: MDState, remove_com_motion: bool) -> None:
        super().setup(state, remove_com_motion)
        kT = KB_EV_PER_K * self.temperature_K
        tau = self.tau_fs * FS
        if self.massive:
            n_chains = 3 * state.positions.shape[0]
            chain_dof = torch.ones(n_chains, dtype=state.dtype, device=state.device)
        else:
            n_chains = state.n_structures
            chain_dof = self.dof
        shape = (n_chains, self.chain_length)
        options = {"dtype": state.dtype, "device": state.device}
        masses = torch.full(shape, kT * tau * tau, **options)
        masses[:, 0] = chain_dof.clamp(min=1.0) * kT * tau * tau
        self._q = masses
        self._kT = kT
        self._target = chain_dof * kT
        if self.chain_velocity is None or self.chain_velocity.shape != shape:
            self.chain_velocity = torch.zeros(shape, **options)
            self.chain_position = torch.zeros_like(self.chain_velocity)

    def _chain_kinetic(self, state: MDState) -> torch.Tensor:
        if self.massive:
            p = state.momenta
            return (0.5 * p * p / state.masses[:, None]).reshape(-1)
        return state.kinetic_energy()

    def _thermostat(self, state: MDState, dt: float) -> None:
        before = state.kinetic_energy()
        kinetic = self._chain_kinetic(state)
        v, q, kT, target = self.chain_velocity, self._q, self._kT, self._target
        n = self.chain_length
        scale = torch.ones_like(kinetic)

        def force(k: int, kin: torch.Tensor) -> torch.Tensor:
            if k == 0:
                return (2.0 * kin - target) / q[:, 0]
            return (q[:, k - 1] * v[:, k - 1] ** 2 - kT) / q[:, k]

        for weight in self._weights:
            h = weight * dt / self.n_substeps  # this substep's share of dt
            for _ in range(self.n_substeps):
                # Chain velocities from the top down over half the substep.
                v[:, n - 1] += 0.5 * h * force(n - 1, kinetic)
                for k in range(n - 2, -1, -1):
                    damp = torch.exp(-0.25 * h * v[:, k + 1])
                    v[:, k] = (v[:, k] * damp + 0.5 * h * force(k, kinetic)) * damp
                # The first thermostat scales the particle momenta.
                factor = torch.exp(-h * v[:, 0])
                scale = scale * factor
                kinetic = kinetic * factor * factor
                self.chain_position += h * v
                # Chain velocities from the bottom up over the other half.
                for k in range(n - 1):
                    damp = torch.exp(-0.25 * h * v[:, k + 1])
                    v[:, k] = (v[:, k] * damp + 0.5 * h * force(k, kinetic)) * damp
                v[:, n - 1] += 0.5 * h * force(n - 1, kinetic)
        if self.massive:
            state.momenta.mul_(scale.reshape(-1, 3))
        else:
            state.momenta.mul_(scale[state.structure_index][:, None])
        self.heat += before - state.kinetic_energy()

    def state_dict(self) -> dict:
        return {
            "heat": self.heat,
            "chain_velocity": self.chain_velocity,
            "chain_position": self.chain_position,
        }

    def load_state_dict(self, state: dict) -> None:
        self.heat = state["heat"].clone()
        self.chain_velocity = state["chain_velocity"].clone()
        self.chain_position = state["chain_position"].clone()


class StochasticCellRescaling(Bussi):
    """NPT: isotropic stochastic cell rescaling (Bernetti & Bussi 2020)
    with the Bussi thermostat.

    The logarithm of the volume, eps = ln V, follows the Itô equation

        d eps = -(beta_T / tau_p) (P_0 - P) dt
                + sqrt(2 k_B T beta_T / (V tau_p)) dW

    (Euler–Maruyama over one step), whose stationary density is
    exp(-(P_0 V + F(V)) / k_B T) dV, F the Helmholtz free energy: the
    isothermal-isobaric ensemble. (Written for V itself the drift gains a
    k_B T / V term; in ln V Itô's rule cancels it.) Positions and the cell
    are scaled by exp(d eps / 3) and momenta by its inverse. P is the
    instantaneous pressure (kinetic plus virial). Only for fully periodic
    structures; each structure has its own volume.

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.
    temperature_K : float
        Bath temperature, K.
    pressure_GPa : float
        Target pressure, GPa.
    tau_fs : float
        Thermostat relaxation time, fs.
    tau_p_fs : float
        Barostat relaxation time, fs.
    compressibility_per_GPa : float
        An estimate of the isothermal compressibility beta_T, 1/GPa; it sets
        only the barostat's time scale, not the sampled distribution.
    """

    needs_virial = True

    def __init__(
        self,
        timestep_fs: float,
        temperature_K: float,
        pressure_GPa: float,
        tau_fs: float = 100.0,
        tau_p_fs: float = 1000.0,
        compressibility_per_GPa: float = 0.5,
    ) -> None:
        super().__init__(timestep_fs, temperature_K, tau_fs)
        self.pressure_GPa = float(pressure_GPa)
        self.tau_p_fs = _positive("tau_p_fs", tau_p_fs)
        self.compressibility_per_GPa = _positive(
            "compressibility_per_GPa", compressibility_per_GPa
        )

    def setup(self, state: MDState, remove_com_motion: bool) -> None:
        if not bool(state.pbc.all()):
            raise UserError(
                "NPT needs fully periodic structures; every structure must have "
                "pbc True along all three lattice vectors"
            )
        super().setup(state, remove_com_motion)

    def _barostat(self, state: MDState, dt: float) -> None:
        volume = state.volume()
        kT = KB_EV_PER_K * self.temperature_K
        beta = self.compressibility_per_GPa * EV_PER_A3_TO_GPA  # 1/(eV/Å^3)
        p0 = self.pressure_GPa / EV_PER_A3_TO_GPA  # eV/Å^3
        kinetic = state.kinetic_energy()
        virial_trace = state.virial.diagonal(dim1=1, dim2=2).sum(1)
        pressure = (2.0 * kinetic + virial_trace) / (3.0 * volume)
        tau_p = self.tau_p_fs * FS
        noise = torch.randn(
            state.n_structures,
            generator=state.generator,
            dtype=state.dtype,
            device=state.device,
        )
        d_eps = -(beta / tau_p) * (p0 - pressure) * dt + torch.sqrt(
            2.0 * kT * beta * dt / (volume * tau_p)
        ) * noise
        scale = torch.exp(d_eps / 3.0)
        per_atom = scale[state.structure_index][:, None]
        state.positions.mul_(per_atom)
        state.momenta.div_(per_atom)
        state.cell.mul_(scale[:, None, None])
        self.heat += kinetic - state.kinetic_energy()

    def step(self, state: MDState, compute: ForceCall) -> None:
        half = 0.5 * self.dt
        self._thermostat(state, half)
        self._kick(state, half)
        # The virial is that of the current positions, as the barostat needs.
        self._barostat(state, self.dt)
        self._drift(state, self.dt)
        compute(True)
        self._kick(state, half)
        self._thermostat(state, half)
