"""Inference speed of the DeepPot-SE model, side by side with DeePMD-kit.

Energy and forces of one 192-atom water frame (``datasets/water.h5``,
system data_3, frame 0), DeePMD-kit's water example architecture (se_e2_a,
rcut 6 Å, sel [46, 92], embedding [25, 50, 100], axis 16, fitting
[240, 240, 240], ``type_one_side`` false), in µs per atom, for the frozen
model (exact and compressed, float64 and float32) with one and two threads.
The neighbour list is rebuilt in every call, as in a calculator.

If DeePMD-kit is installed in ``benchmarks/_work/dpvenv`` (see
``benchmarks/train/bench_vs_deepmd.py``), the same run builds a DeePMD-kit
model of the same architecture (one training step), freezes and compresses
it, and times its inference API (``DeepPot.eval``, which its ASE calculator
wraps) on the same frame, interleaved with ours so both see the same
machine load. Weights do not change the cost, so neither
model needs to be trained.

Run from the repository root::

    python benchmarks/nn/inference.py --repeats 20 --rounds 2

Results go to ``benchmarks/nn/results.json`` and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1].parent
WORK = REPO / "benchmarks" / "_work" / "nn_inference"
DEEPMD_DATA = REPO.parent / "shared" / "data" / "water_deepmd"

MODEL = {
    "type_map": ["O", "H"],
    "descriptor": {
        "type": "se_e2_a", "sel": [46, 92], "rcut_smth": 0.5, "rcut": 6.0,
        "neuron": [25, 50, 100], "resnet_dt": False, "axis_neuron": 16,
        "type_one_side": False, "seed": 1,
    },
    "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1},
}

# Runs inside DeePMD-kit's environment: time its inference API (what its ASE
# calculator calls; ASE itself is not installed there).
_DEEPMD_TIMER = r"""
import json, statistics, sys, time
import numpy as np
import torch
from deepmd.infer import DeepPot
model, frame = sys.argv[1], sys.argv[2]
threads, repeats = int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
data = np.load(frame)
types = np.where(data["numbers"] == 8, 0, 1)
coords = data["positions"].reshape(1, -1)
cells = data["cell"].reshape(1, 9)
potential = DeepPot(model)
for _ in range(3):
    energy, forces, _ = potential.eval(coords, cells, types)
times, cpu = [], []
for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    energy, forces, _ = potential.eval(coords, cells, types)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times),
                  "cpu_median_s": statistics.median(cpu),
                  "energy": float(np.ravel(energy)[0])}))
"""


def _frame():
    from deepmd_like.data import Dataset, collate_structures

    dataset = Dataset(f"{REPO / 'datasets' / 'water.h5'}:data_3")
    frame = dataset[0]
    return collate_structures([frame]), [dataset[i] for i in range(0, 80, 8)]


def _our_models(stat_frames, dtype):
    """Frozen exact and compressed models (paths)."""
    from deepmd_like.data import collate_structures
    from deepmd_like.nn.export import freeze
    from deepmd_like.nn.model import EnergyModel

    paths = {}
    for compressed in (False, True):
        model = EnergyModel(MODEL)
        model.compute_input_stats([collate_structures([f]) for f in stat_frames])
        if compressed:
            model.compress(min_distance=0.5)
        name = f"ours-{'compressed' if compressed else 'exact'}.pt"
        paths[compressed] = freeze(model, WORK / name, overwrite=True)
    return paths


def _time_ours(path, batch, dtype, threads, repeats):
    from deepmd_like.nn.evaluate import evaluate
    from deepmd_like.nn.export import load_model

    torch.set_num_threads(threads)
    model = load_model(path, dtype=dtype)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for _ in range(3):
        evaluate(model, batch)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = evaluate(model, batch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "cpu_median_s": statistics.median(cpu), "energy": float(out["energy"][0])}


def _deepmd_models(venv: Path) -> dict | None:
    """Frozen and compressed DeePMD-kit models of the same architecture."""
    dp = venv / "bin" / "dp"
    if not dp.exists() or not DEEPMD_DATA.is_dir():
        return None
    work = WORK / "deepmd"
    work.mkdir(parents=True, exist_ok=True)
    frozen, compressed = work / "frozen.pth", work / "compressed.pth"
    if not compressed.exists():
        config = {
            "model": MODEL,
            "learning_rate": {"type": "exp", "decay_steps": 1, "start_lr": 1e-3,
                              "stop_lr": 1e-3},
            "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1,
                     "start_pref_f": 1000, "limit_pref_f": 1},
            "training": {
                "training_data": {"systems": [str(DEEPMD_DATA / "data_0")],
                                  "batch_size": 1},
                "numb_steps": 1, "seed": 1, "disp_freq": 1, "save_freq": 1,
            },
        }
        (work / "input.json").write_text(json.dumps(config, indent=1))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        for command in (
            [str(dp), "--pt", "train", "input.json"],
            [str(dp), "--pt", "freeze", "-o", frozen.name],
            [str(dp), "--pt", "compress", "-i", frozen.name, "-o", compressed.name],
        ):
            with open(work / "log.txt", "a") as log:
                subprocess.run(command, cwd=work, env=env, stdout=log,
                               stderr=subprocess.STDOUT, check=True)
    return {False: frozen, True: compressed}


def _time_deepmd(venv, path, frame_file, threads, repeats):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               DP_INTRA_OP_PARALLELISM_THREADS=str(threads),
               DP_INTER_OP_PARALLELISM_THREADS="1")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-W", "ignore", "-c", _DEEPMD_TIMER, str(path),
         str(frame_file), str(threads), str(repeats)],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds; the best round's median is kept")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dp-venv",
                        default=str(REPO / "benchmarks" / "_work" / "dpvenv"))
    parser.add_argument("--no-deepmd", action="store_true")
    parser.add_argument("-o", "--output", default=str(Path(__file__).with_name(
        "results.json")))
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    batch, stat_frames = _frame()
    n_atoms = int(batch["positions"].shape[0])
    ours = _our_models(stat_frames, torch.float64)
    venv = Path(args.dp_venv)
    theirs = None
    if not args.no_deepmd:
        try:
            theirs = _deepmd_models(venv)
        except subprocess.CalledProcessError as error:
            print(f"DeePMD-kit not timed: {error} (see {WORK / 'deepmd' / 'log.txt'})")
        if theirs is None:
            print("DeePMD-kit not timed (no usable installation)")
    frame_file = WORK / "frame.npz"
    np.savez(frame_file, numbers=batch["atomic_numbers"].numpy(),
             positions=batch["positions"].numpy(), cell=batch["cell"][0].numpy())

    cases = []
    for threads in args.threads:
        for compressed in (False, True):
            for dtype in (torch.float64, torch.float32):
                cases.append(("deepmd_like", compressed, dtype, threads))
            if theirs is not None:
                cases.append(("DeePMD-kit 3.2.0", compressed, torch.float64, threads))
    best: dict = {}
    for _ in range(args.rounds):
        for code, compressed, dtype, threads in cases:
            if code == "deepmd_like":
                r = _time_ours(ours[compressed], batch, dtype, threads, args.repeats)
            else:
                r = _time_deepmd(venv, theirs[compressed], frame_file, threads,
                                 args.repeats)
            key = (code, compressed, str(dtype).removeprefix("torch."), threads)
            if key not in best or r["median_s"] < best[key]["median_s"]:
                best[key] = r

    rows = []
    for (code, compressed, dtype, threads), r in best.items():
        rows.append({
            "code": code, "compressed": compressed, "precision": dtype,
            "threads": threads, "us_per_atom_median": 1e6 * r["median_s"] / n_atoms,
            "us_per_atom_min": 1e6 * r["min_s"] / n_atoms,
            # Process CPU time (all threads): robust to other load on 1 thread.
            "cpu_us_per_atom_median": 1e6 * r["cpu_median_s"] / n_atoms,
        })
    machine = {"cpu": _cpu_name(), "torch": torch.__version__,
               "load_average": os.getloadavg()}
    Path(args.output).write_text(json.dumps({"n_atoms": n_atoms, "machine": machine,
                                             "results": rows}, indent=1))
    print(f"{'code':18s} {'model':11s} {'precision':9s} {'threads':>7s} "
          f"{'µs/atom (median)':>17s} {'(min)':>8s} {'CPU µs/atom':>12s}")
    for row in sorted(rows, key=lambda r: (r["threads"], r["compressed"], r["code"],
                                           r["precision"])):
        print(f"{row['code']:18s} {'compressed' if row['compressed'] else 'exact':11s} "
              f"{row['precision']:9s} {row['threads']:7d} "
              f"{row['us_per_atom_median']:17.0f} {row['us_per_atom_min']:8.0f} "
              f"{row['cpu_us_per_atom_median']:12.0f}")
    return 0


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
