"""Liquid argon at Rahman's 1964 state point: self-diffusion and g(r).

A. Rahman, "Correlations in the motion of atoms in liquid argon",
Phys. Rev. 136, A405 (1964): 864 Lennard-Jones atoms (epsilon/k_B = 120 K,
sigma = 3.4 Å, m = 39.95 amu), 94.4 K, 1.374 g/cm^3, potential cut at
2.25 sigma; he found D = 2.43e-5 cm^2/s.

Equilibration: Langevin at 300 K (melts the fcc start), Langevin then Bussi
at 94.4 K; production: NVE (as Rahman),
frames every 20 fs. D from the Einstein relation (MSD slope between 2 and
10 ps), g(r) first peak by a parabola through the highest bins.

    python benchmarks/md/engine_rahman_argon.py [--ps 30] [--compile]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from deepmd_like.md import Bussi, Langevin, LennardJones, Simulation, VelocityVerlet
from deepmd_like.md.analysis import (
    einstein_diffusion,
    mean_squared_displacement,
    radial_distribution,
)

from engine_common import ARGON_EPSILON, ARGON_SIGMA, argon_liquid, machine, write

RAHMAN_D_CM2_S = 2.43e-5


class Frames:
    def __init__(self, interval):
        self.interval = interval
        self.positions, self.temperature = [], []

    def report(self, simulation, observables):
        self.positions.append(simulation.state.positions.numpy().copy())
        self.temperature.append(float(observables["temperature"][0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps", type=float, default=30.0, help="NVE length, ps")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dt = 2.0
    potential = LennardJones(ARGON_EPSILON, ARGON_SIGMA, 2.25 * ARGON_SIGMA,
                             smoothing="energy_shift", compile=args.compile)
    atoms = argon_liquid(1.374)
    sim = Simulation(atoms, potential, Langevin(dt, 94.4, friction_per_fs=0.02),
                     skin=1.0, seed=args.seed, remove_com_motion=True)
    sim.initialize_velocities(300.0)
    start = time.perf_counter()
    sim.set_integrator(Langevin(dt, 300.0, friction_per_fs=0.02))
    sim.run(1500)  # 3 ps at 300 K: melt the lattice
    sim.set_integrator(Langevin(dt, 94.4, friction_per_fs=0.02))
    sim.run(2500)  # 5 ps: cool to 94.4 K
    sim.set_integrator(Bussi(dt, 94.4, tau_fs=200.0))
    sim.run(5000)  # 10 ps
    sim.set_integrator(VelocityVerlet(dt))
    frames = Frames(interval=10)
    sim.run(int(round(args.ps * 1000 / dt)), reporters=[frames])
    elapsed = time.perf_counter() - start

    positions = np.stack(frames.positions)
    msd = mean_squared_displacement(positions, frame_interval_fs=10 * dt)
    diffusion = einstein_diffusion(msd, fit_start_fs=2000.0, fit_end_fs=10000.0)
    cells = np.repeat(atoms.cell[:][None], len(positions), 0)
    every = max(1, len(positions) // 200)
    rdf = radial_distribution(
        positions[::every], cells[::every], atoms.get_atomic_numbers(),
        ("Ar", "Ar"), r_max=12.0, n_bins=240,
    )
    peak_r, peak_g = rdf.first_peak()
    result = {
        "machine": machine(),
        "n_atoms": len(atoms),
        "temperature_K_mean_nve": float(np.mean(frames.temperature)),
        "nve_ps": args.ps,
        "timestep_fs": dt,
        "diffusion_cm2_s": diffusion,
        "rahman_diffusion_cm2_s": RAHMAN_D_CM2_S,
        "relative_difference": diffusion / RAHMAN_D_CM2_S - 1.0,
        "rdf_first_peak_A": peak_r,
        "rdf_first_peak_height": peak_g,
        "rdf_first_peak_sigma": peak_r / ARGON_SIGMA,
        "wall_s": elapsed,
        "rdf": {"r_A": rdf.r.tolist(), "g": rdf.g.tolist()},
    }
    print(f"T = {result['temperature_K_mean_nve']:.1f} K, "
          f"D = {diffusion:.3e} cm^2/s (Rahman {RAHMAN_D_CM2_S:.2e}, "
          f"{100 * result['relative_difference']:+.1f} %), "
          f"g(r) first peak {peak_r:.3f} Å ({peak_r / ARGON_SIGMA:.3f} sigma), "
          f"height {peak_g:.3f}")
    print(f"wrote {write('engine_rahman_argon.json', result)}")


if __name__ == "__main__":
    main()
