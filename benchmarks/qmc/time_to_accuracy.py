"""Wall time until a ``dpl vmc`` run's training energy reaches a target.

    python benchmarks/qmc/time_to_accuracy.py RUN_DIR [RUN_DIR ...]
        [--target-mha 1.6] [--window 100]

Reads ``train.csv`` and ``result.json`` of each run: reports the training
wall time at which the mean energy of the last ``window`` steps first comes
within the target of the exact energy (an estimate: training energies are
correlated and the parameters still move), and the final evaluated energy
with its reblocking error, which is the number that counts.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def first_within(rows: list[dict], exact: float, target: float, window: int):
    energies = [float(r["energy_Ha"]) for r in rows]
    for end in range(window, len(energies) + 1):
        mean = sum(energies[end - window : end]) / window
        if abs(mean - exact) <= target:
            return int(rows[end - 1]["step"]), float(rows[end - 1]["wall_s"])
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target-mha", type=float, default=1.6)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    print("run  target(mHa)  step  train_wall(s)  E_eval(Ha)  err(mHa)  E-exact(mHa)")
    for run in args.runs:
        result = json.loads((run / "result.json").read_text())
        with open(run / "train.csv") as handle:
            rows = list(csv.DictReader(handle))
        exact = result["reference_Ha"]
        step, wall = first_within(rows, exact, args.target_mha * 1e-3, args.window)
        print(
            f"{run.name}  {args.target_mha}  {step}  "
            f"{'-' if wall is None else f'{wall:.0f}'}  {result['energy_Ha']:.6f}  "
            f"{1e3 * result['error_Ha']:.3f}  {1e3 * result['difference_Ha']:+.3f}"
        )


if __name__ == "__main__":
    main()
