"""Training speed and accuracy side by side with DeePMD-kit (PyTorch backend).

Both codes train DeePMD-kit's water example (se_e2_a, rcut 6 Å, embedding
[25, 50, 100], axis 16, fitting [240, 240, 240], float64, batch size 1) for
the same number of steps on data_0..2, with the learning rate decayed from
1e-3 to 3.51e-8 over the run; both are then tested on all 80 frames of
data_3. DeePMD-kit reads the original npy systems, we read the same frames
from datasets/water.h5.

DeePMD-kit lives in its own virtual environment (never a dependency of the
package)::

    python -m venv benchmarks/_work/dpvenv
    benchmarks/_work/dpvenv/bin/pip install torch==2.13.0 deepmd-kit==3.2.0 mpich e3nn

Run (from the repository root)::

    python benchmarks/train/bench_vs_deepmd.py --steps 2000 --threads 1

Results go to benchmarks/train/results.json (and are printed as a table).
Steps/s is measured over the training loop only (set-up and statistics
excluded) from each code's own timing lines.
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

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "water_deepmd"


def deepmd_input(steps: int, seed: int) -> dict:
    systems = [str(SHARED / f"data_{i}") for i in range(3)]
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {
                "type": "se_e2_a",
                "sel": [46, 92],
                "rcut_smth": 0.5,
                "rcut": 6.0,
                "neuron": [25, 50, 100],
                "resnet_dt": False,
                "axis_neuron": 16,
                "type_one_side": False,
                "seed": seed,
            },
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": seed},
        },
        "learning_rate": {
            "type": "exp",
            "decay_steps": 5000,
            "start_lr": 0.001,
            "stop_lr": 3.51e-8,
        },
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": {
            "training_data": {"systems": systems, "batch_size": 1},
            "validation_data": {
                "systems": [str(SHARED / "data_3")],
                "batch_size": 1,
                "numb_btch": 1,
            },
            "numb_steps": steps,
            "seed": seed,
            "disp_file": "lcurve.out",
            "disp_freq": 100,
            "save_freq": steps,
        },
    }


def our_input(steps: int, seed: int) -> dict:
    data = deepmd_input(steps, seed)
    water = REPO / "datasets" / "water.h5"
    data["training"]["training_data"]["systems"] = [f"{water}:data_0,data_1,data_2"]
    data["training"]["validation_data"]["systems"] = [f"{water}:data_3"]
    data["training"].pop("disp_file")
    return data


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        OMP_WAIT_POLICY="PASSIVE",
        DP_INTRA_OP_PARALLELISM_THREADS=str(threads),
        DP_INTER_OP_PARALLELISM_THREADS="1",
    )
    return env


def _run(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as handle:
        subprocess.run(
            cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True
        )
    return time.perf_counter() - start


def _deepmd_train_cmd(work: Path, venv: Path, steps: int, seed: int, disp: int):
    work.mkdir(parents=True, exist_ok=True)
    data = deepmd_input(steps, seed)
    data["training"]["disp_freq"] = disp
    (work / "input.json").write_text(json.dumps(data, indent=2))
    return [str(venv / "bin" / "dp"), "--pt", "train", "input.json"]


def _deepmd_speed(work: Path, disp: int) -> float | None:
    text = (work / "train.log").read_text()
    # "Batch 200: total wall time = 55.1 s" style lines, per display interval.
    times = [float(t) for t in re.findall(r"total wall time = ([0-9.]+) s", text)]
    # Drop the first interval (warm-up), as for our side.
    per_interval = times[1:] if len(times) > 1 else times
    return disp * len(per_interval) / sum(per_interval) if per_interval else None


def _our_train_cmd(work: Path, steps: int, seed: int, threads: int, disp: int):
    work.mkdir(parents=True, exist_ok=True)
    data = our_input(steps, seed)
    data["training"]["num_threads"] = threads
    data["training"]["disp_freq"] = disp
    (work / "input.json").write_text(json.dumps(data, indent=2))
    return [
        sys.executable,
        "-m",
        "deepmd_like",
        "train",
        "input.json",
        "-o",
        str(work / "run"),
        "--overwrite",
        "--no-progress",
    ]


def _our_speed(work: Path, disp: int) -> float:
    rows = [
        line.split(",")
        for line in (work / "run" / "lcurve.csv").read_text().splitlines()[1:]
    ]
    # Columns: step first, wall time last; skip the first interval (warm-up).
    points = [(int(r[0]), float(r[-1])) for r in rows if int(r[0]) >= disp]
    (s0, t0), (s1, t1) = points[0], points[-1]
    return (s1 - s0) / (t1 - t0)


def speed_side_by_side(
    work: Path, venv: Path, steps: int, seed: int, threads: int
) -> dict:
    """Both codes train at the same time (same load), ``steps`` steps each."""
    disp = max(steps // 5, 1)
    env = _env(threads)
    ours_dir, dp_dir = work / "speed-ours", work / "speed-deepmd"
    ours_cmd = _our_train_cmd(ours_dir, steps, seed, threads, disp)
    dp_cmd = _deepmd_train_cmd(dp_dir, venv, steps, seed, disp)
    load = os.getloadavg()[0]
    with (ours_dir / "train.log").open("w") as a, (dp_dir / "train.log").open("w") as b:
        procs = [
            subprocess.Popen(
                ours_cmd, cwd=ours_dir, env=env, stdout=a, stderr=subprocess.STDOUT
            ),
            subprocess.Popen(
                dp_cmd, cwd=dp_dir, env=env, stdout=b, stderr=subprocess.STDOUT
            ),
        ]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"{proc.args} failed; see its train.log")
    return {
        "steps": steps,
        "threads": threads,
        "load_at_start": load,
        "ours_steps_per_s": _our_speed(ours_dir, disp),
        "deepmd_steps_per_s": _deepmd_speed(dp_dir, disp),
    }


def run_deepmd(work: Path, venv: Path, steps: int, seed: int, threads: int) -> dict:
    dp = str(venv / "bin" / "dp")
    env = _env(threads)
    cmd = _deepmd_train_cmd(work, venv, steps, seed, 100)
    wall = _run(cmd, work, env, work / "train.log")
    steps_per_s = _deepmd_speed(work, 100)
    _run(
        [dp, "--pt", "freeze", "-o", "frozen_model.pth"], work, env, work / "freeze.log"
    )
    _run(
        [
            dp,
            "--pt",
            "test",
            "-m",
            "frozen_model.pth",
            "-s",
            str(SHARED / "data_3"),
            "-n",
            "80",
        ],
        work,
        env,
        work / "test.log",
    )
    test = (work / "test.log").read_text()
    energy = float(re.findall(r"Energy RMSE/Natoms\s*:\s*([0-9.eE+-]+)", test)[-1])
    force = float(re.findall(r"Force\s+RMSE\s*:\s*([0-9.eE+-]+)", test)[-1])
    return {
        "code": "DeePMD-kit 3.2.0 (dp --pt)",
        "steps": steps,
        "steps_per_s": steps_per_s,
        "train_wall_s": wall,
        "energy_rmse_per_atom_eV": energy,
        "force_rmse_eV_per_A": force,
    }


def run_ours(work: Path, steps: int, seed: int, threads: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    data = our_input(steps, seed)
    data["training"]["num_threads"] = threads
    (work / "input.json").write_text(json.dumps(data, indent=2))
    env = _env(threads)
    dpl = [sys.executable, "-m", "deepmd_like"]
    run = work / "run"
    wall = _run(
        dpl + ["train", "input.json", "-o", str(run), "--overwrite", "--no-progress"],
        work,
        env,
        work / "train.log",
    )
    rows = [
        line.split(",") for line in (run / "lcurve.csv").read_text().splitlines()[1:]
    ]
    # Columns: step first, wall time last; skip the warm-up up to step 100.
    points = [(int(r[0]), float(r[-1])) for r in rows if int(r[0]) >= 100]
    (s0, t0), (s1, t1) = points[0], points[-1]
    steps_per_s = (s1 - s0) / (t1 - t0)
    metrics = work / "test.json"
    _run(
        dpl
        + [
            "test",
            "-m",
            str(run / "checkpoint.pt"),
            "-s",
            f"{REPO / 'datasets' / 'water.h5'}:data_3",
            "--json",
            str(metrics),
            "--overwrite",
        ],
        work,
        env,
        work / "test.log",
    )
    overall = json.loads(metrics.read_text())["overall"]
    return {
        "code": "deepmd_like (dpl train)",
        "steps": steps,
        "steps_per_s": steps_per_s,
        "train_wall_s": wall,
        "energy_rmse_per_atom_eV": overall["energy_rmse_per_atom"],
        "force_rmse_eV_per_A": overall["force_rmse"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "_work" / "train"))
    parser.add_argument(
        "--dp-venv", default=str(REPO / "benchmarks" / "_work" / "dpvenv")
    )
    parser.add_argument("--only", choices=("ours", "deepmd"), help="run one side only")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="train both codes at the same time for --steps steps; report steps/s only",
    )
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "train" / "results.json")
    )
    args = parser.parse_args()
    work = Path(args.work)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = (
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start"
    )
    if args.speed_only:
        results["speed"] = speed_side_by_side(
            work, Path(args.dp_venv), args.steps, args.seed, args.threads
        )
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["speed"], indent=2))
        return
    if args.only != "deepmd":
        results["ours"] = run_ours(work / "ours", args.steps, args.seed, args.threads)
        out.write_text(json.dumps(results, indent=2) + "\n")
    if args.only != "ours":
        results["deepmd"] = run_deepmd(
            work / "deepmd", Path(args.dp_venv), args.steps, args.seed, args.threads
        )
        out.write_text(json.dumps(results, indent=2) + "\n")
    print("| code | steps | steps/s | energy RMSE (eV/atom) | force RMSE (eV/Å) |")
    print("| --- | --- | --- | --- | --- |")
    for key in ("ours", "deepmd"):
        r = results.get(key)
        if r:
            print(
                f"| {r['code']} | {r['steps']} | {r['steps_per_s']:.2f} | "
                f"{r['energy_rmse_per_atom_eV']:.3e} | {r['force_rmse_eV_per_A']:.3f} |"
            )


if __name__ == "__main__":
    main()
