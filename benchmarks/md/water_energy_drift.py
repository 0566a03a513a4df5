"""NVE energy conservation of the shipped water potential (192 atoms, float64).

The 64-water box of ``md/water/water64.extxyz`` with
``potentials/water-se_e2_a/model.pt`` loaded in float64 is thermalised with
Langevin dynamics at 300 K, then run in NVE with velocity Verlet at 0.5 fs
and a 1 Å neighbour-list skin (positions stay unwrapped; atoms leave the
box). The drift is the slope of a straight line through E_tot(t), per atom
and per ps.

    python benchmarks/md/water_energy_drift.py [--ps 1.0] [--compressed]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read

from deepmd_like import load_model
from deepmd_like.md import Langevin, Simulation, VelocityVerlet

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


class EnergyLog:
    """Collects the total energy every ``interval`` steps."""

    def __init__(self, interval: int):
        self.interval = interval
        self.time_fs: list[float] = []
        self.total: list[float] = []

    def report(self, simulation, observables):
        self.time_fs.append(observables["time_fs"])
        self.total.append(float(observables["total_energy"][0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps", type=float, default=1.0, help="NVE length, ps")
    parser.add_argument("--equilibration-ps", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compressed", action="store_true",
                        help="tabulated embedding nets (dpl freeze --compress)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    model = load_model(ROOT / "potentials/water-se_e2_a/model.pt",
                       dtype=torch.float64)
    if args.compressed:
        model.compress()
    atoms = read(ROOT / "md/water/water64.extxyz")
    timestep_fs = 0.5
    sim = Simulation(atoms, model, Langevin(timestep_fs, 300.0, friction_per_fs=0.01),
                     skin=1.0, seed=args.seed, remove_com_motion=True)
    sim.initialize_velocities(300.0)
    sim.run(int(round(args.equilibration_ps * 1000 / timestep_fs)))

    sim.set_integrator(VelocityVerlet(timestep_fs))
    builds = sim.neighbors.n_builds
    start_fs = sim.state.time_fs
    log = EnergyLog(interval=10)
    n_steps = int(round(args.ps * 1000 / timestep_fs))
    t0 = time.perf_counter()
    sim.run(n_steps, reporters=[log])
    elapsed = time.perf_counter() - t0

    n_atoms = len(atoms)
    t_ps = (np.array(log.time_fs) - start_fs) * 1e-3
    total = np.array(log.total)
    slope = np.polyfit(t_ps, total, 1)[0]  # eV/ps
    cell = sim.state.cell[0]
    fractional = sim.state.positions @ torch.linalg.inv(cell)
    outside = int(((fractional < 0) | (fractional >= 1)).any(1).sum())
    result = {
        "model": "potentials/water-se_e2_a/model.pt (float64"
        + (", compressed)" if args.compressed else ")"),
        "n_atoms": n_atoms,
        "timestep_fs": timestep_fs,
        "nve_ps": args.ps,
        "drift_eV_per_atom_per_ps": float(abs(slope) / n_atoms),
        "max_deviation_eV_per_atom": float(np.abs(total - total[0]).max() / n_atoms),
        "rms_fluctuation_eV_per_atom": float(
            np.std(total - np.polyval([slope, 0.0], t_ps)) / n_atoms),
        "neighbour_list_builds_in_nve": sim.neighbors.n_builds - builds,
        "atoms_outside_the_box_at_end": outside,
        "steps_per_s": n_steps / elapsed,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    name = "water_energy_drift" + ("_compressed" if args.compressed else "") + ".json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
