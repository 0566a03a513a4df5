"""Speed of the MD engine on Lennard-Jones systems (LAMMPS's in.lj).

in.lj: fcc at reduced density 0.8442, velocities at T* = 3, cutoff 2.5
sigma, skin 0.3 sigma, dt = 0.005 tau, NVE. Reduced units are mapped onto
eV, Å and amu (epsilon = 1 eV, sigma = 1 Å, m = 1 amu). Reported: steps/s,
atom-steps/s, the share of the step spent in the force call (neighbour list
included) and in the neighbour list alone, and for a batch of small
replicas the replica-steps/s.

    python benchmarks/md/engine_performance.py [--threads 1] [--no-compile]
"""

from __future__ import annotations

import argparse
import time

import torch
from ase import units

from deepmd_like.md import LennardJones, Simulation, VelocityVerlet

from engine_common import in_lj, machine, write

TAU_FS = 1.0 / units.fs  # one reduced time unit (sqrt(m sigma^2 / eps)) in fs


def in_lj_simulation(repeat, compile: bool, device: str, n_replicas: int = 1):
    atoms = in_lj(1)
    atoms = atoms.repeat(repeat)
    structures = [atoms.copy() for _ in range(n_replicas)]
    potential = LennardJones(1.0, 1.0, 2.5, compile=compile)
    sim = Simulation(structures if n_replicas > 1 else atoms, potential,
                     VelocityVerlet(0.005 * TAU_FS), skin=0.3, seed=87287,
                     device=device)
    sim.initialize_velocities(3.0 / units.kB)  # T* = 3
    return sim


def measure(sim, n_steps: int, n_warmup: int = 20) -> dict:
    sim.run(n_warmup)
    if sim.state.device.type == "cuda":
        torch.cuda.synchronize()
    sim.force_seconds = sim.neighbor_seconds = 0.0
    builds = sim.neighbors.n_builds
    start = time.perf_counter()
    cpu_start = time.process_time()
    sim.run(n_steps)
    cpu = time.process_time() - cpu_start
    if sim.state.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    n_atoms = sim.state.positions.shape[0]
    return {
        "n_atoms": n_atoms,
        "n_structures": sim.state.n_structures,
        "steps": n_steps,
        "seconds": elapsed,
        # CPU seconds of this process: with one thread, the wall time the
        # run would take on an idle core (the machine may be shared).
        "cpu_seconds": cpu,
        "atom_steps_per_cpu_s": n_atoms * n_steps / cpu,
        "steps_per_s": n_steps / elapsed,
        "atom_steps_per_s": n_atoms * n_steps / elapsed,
        "force_call_share": sim.force_seconds / elapsed,
        "neighbour_list_share": sim.neighbor_seconds / elapsed,
        "engine_overhead_share": 1.0 - sim.force_seconds / elapsed,
        "list_builds": sim.neighbors.n_builds - builds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    compile = not args.no_compile

    rows = []
    cases = [((6, 6, 6), 300, False), ((6, 6, 6), 300, compile),
             ((10, 10, 20), 100, compile), ((20, 20, 20), 100, compile)]
    for repeat, n_steps, use_compile in cases:
        sim = in_lj_simulation(repeat, use_compile, args.device)
        row = measure(sim, n_steps)
        row["compiled"] = use_compile
        rows.append(row)
        print(f"in.lj {row['n_atoms']:>6} atoms, compiled={use_compile}: "
              f"{row['steps_per_s']:8.1f} steps/s, "
              f"{row['atom_steps_per_s'] / 1e6:6.3f} M atom-steps/s "
              f"({row['atom_steps_per_cpu_s'] / 1e6:6.3f} per CPU-s), "
              f"overhead {100 * row['engine_overhead_share']:.1f} %, "
              f"neighbour list {100 * row['neighbour_list_share']:.1f} %, "
              f"{row['list_builds']} builds")

    replicas = []
    for n in (1, 8, 64):
        sim = in_lj_simulation((3, 3, 3), compile, args.device, n_replicas=n)
        row = measure(sim, 100)
        row["replica_steps_per_s"] = n * row["steps_per_s"]
        replicas.append(row)
        print(f"{n:>3} replicas of 108 atoms: {row['replica_steps_per_s']:9.1f} "
              f"replica-steps/s")

    name = args.output or f"engine_performance_{args.device}_{args.threads}t.json"
    path = write(name, {"machine": machine(), "in_lj": rows, "replicas": replicas})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
