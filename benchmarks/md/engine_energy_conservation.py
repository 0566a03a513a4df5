"""NVE energy conservation of liquid argon (864 atoms, dt 2 fs, float64).

Lennard-Jones argon at 94.4 K and 1.374 g/cm^3, cutoff 2.5 sigma, with a
force-shifted (smooth: continuous forces) and a plain energy-shifted cutoff.
After a Langevin equilibration the run continues in NVE with a 1 Å skin
(atoms cross the box boundary; positions stay unwrapped). The drift is the
slope of a straight line through E_tot(t), relative to |E_tot|, per ns.

    python benchmarks/md/engine_energy_conservation.py [--ps 20]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from deepmd_like.md import Langevin, LennardJones, Simulation, VelocityVerlet

from engine_common import ARGON_EPSILON, ARGON_SIGMA, argon_liquid, machine, write


class EnergyLog:
    def __init__(self, interval):
        self.interval = interval
        self.time_fs, self.total = [], []

    def report(self, simulation, observables):
        self.time_fs.append(observables["time_fs"])
        self.total.append(float(observables["total_energy"][0]))


def run(smoothing: str, production_ps: float, seed: int, compile: bool) -> dict:
    potential = LennardJones(ARGON_EPSILON, ARGON_SIGMA, 2.5 * ARGON_SIGMA,
                             smoothing=smoothing, compile=compile)
    atoms = argon_liquid()
    sim = Simulation(atoms, potential, Langevin(2.0, 94.4, friction_per_fs=0.01),
                     skin=1.0, seed=seed, remove_com_motion=True)
    sim.initialize_velocities(300.0)
    sim.set_integrator(Langevin(2.0, 300.0, friction_per_fs=0.02))
    sim.run(1500)  # 3 ps at 300 K: melt the fcc start
    sim.set_integrator(Langevin(2.0, 94.4, friction_per_fs=0.02))
    sim.run(2500)  # 5 ps at 94.4 K
    sim.set_integrator(VelocityVerlet(2.0))
    builds = sim.neighbors.n_builds
    start_fs = sim.state.time_fs
    start_positions = sim.state.positions.clone()
    log = EnergyLog(interval=50)
    n_steps = int(round(production_ps * 500))
    sim.force_seconds = 0.0
    t0 = time.perf_counter()
    sim.run(n_steps, reporters=[log])
    elapsed = time.perf_counter() - t0

    t_ns = (np.array(log.time_fs) - start_fs) * 1e-6
    total = np.array(log.total)
    slope = np.polyfit(t_ns, total, 1)[0]  # eV/ns
    cell = sim.state.cell[0]
    fractional = sim.state.positions @ torch.linalg.inv(cell)
    outside = int(((fractional < 0) | (fractional >= 1)).any(1).sum())
    return {
        "smoothing": smoothing,
        "n_atoms": len(atoms),
        "timestep_fs": 2.0,
        "production_ps": production_ps,
        "mean_total_energy_eV": float(total.mean()),
        "drift_eV_per_ns": float(slope),
        "relative_drift_per_ns": float(abs(slope) / abs(total.mean())),
        "drift_eV_per_atom_per_ps": float(abs(slope) / len(atoms) * 1e-3),
        "rms_fluctuation_eV": float(np.std(total - np.polyval([slope, 0.0], t_ns)
                                           - (total - slope * t_ns).mean())),
        # A liquid: atoms travel several Å during the run.
        "mean_square_displacement_A2": float(
            ((sim.state.positions - start_positions) ** 2).sum(1).mean()
        ),
        "neighbour_list_builds_in_nve": sim.neighbors.n_builds - builds,
        "atoms_outside_the_box_at_end": outside,
        "steps_per_s": n_steps / elapsed,
        "force_call_fraction_of_step_time": sim.force_seconds / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps", type=float, default=20.0, help="NVE length, ps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compile", action="store_true",
                        help="fuse the Lennard-Jones kernel with torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO)
    results = [
        run(smoothing, args.ps, args.seed, args.compile)
        for smoothing in ("force_shift", "energy_shift")
    ]
    for r in results:
        print(f"{r['smoothing']:>13}: "
              f"relative drift {r['relative_drift_per_ns']:.2e}/ns"
              f" ({r['drift_eV_per_atom_per_ps']:.2e} eV/atom/ps), "
              f"{r['neighbour_list_builds_in_nve']} list builds, "
              f"{r['atoms_outside_the_box_at_end']} atoms outside the box")
    path = write("engine_energy_conservation.json",
                 {"machine": machine(), "runs": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
