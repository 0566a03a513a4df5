"""Train H2 at R = 1.4 bohr with DeepQMC, for a side-by-side benchmark.

    python benchmarks/qmc/deepqmc_h2.py OUT_DIR [--steps 3000] [--budget-s S]
        [--ansatz default] [--batch 256] [--pretrain-steps 100]
        [--decorrelation N] [--eval-steps 500] [--seed 0] [--window 100]
        [--overwrite] [HYDRA_OVERRIDE ...]

A driver for DeepQMC's own ``train`` (its hydra ``task=train`` config with
KFAC, the chosen ansatz config and the H2 molecule), run in DeepQMC's own
environment (``run_deepqmc.sh`` builds it); nothing of ``deepmd_like`` is
imported. Float64 and one thread for Eigen/BLAS are set before JAX starts,
unless the environment already sets them; JAX's CPU client still sizes its
worker pool by the CPUs the process may use, so run it pinned to one CPU
(``taskset -c 0``, as ``run_deepqmc.sh`` does) to measure one core. Extra
arguments are hydra overrides of the composed config, e.g.
``ansatz.n_determinants=4``.

Writes under OUT_DIR:

- ``train.csv``, ``evaluate.csv``: step, mean and standard deviation of the
  local energy over the walkers (Ha), wall and CPU seconds since the start of
  that stage (the first step includes JAX compilation);
- ``result.json``: the evaluated energy with its reblocking error, in the keys
  that ``time_to_accuracy.py`` reads for ``dpl vmc`` runs, and the summary:
  wall time of pretraining plus sampler equilibration, the training step and
  wall time at which the mean training energy over the last ``window`` steps
  first comes within 0.3 and 0.1 mHa of exact, median seconds per training
  and per evaluation step, and walker-steps per second of sampling plus local
  energy (evaluation steps, compilation excluded);
- ``deepqmc/``: DeepQMC's own files (checkpoints, ``result.h5``, TensorBoard).
"""

from __future__ import annotations

import os

THREAD_ENV = {
    "JAX_PLATFORMS": "cpu",
    "JAX_ENABLE_X64": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}
for _key, _value in THREAD_ENV.items():
    os.environ.setdefault(_key, _value)

import argparse
import csv
import json
import logging
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

import deepqmc  # noqa: F401  (registers the config resolvers)
import jax
import numpy as np
from deepqmc.app import instantiate_ansatz
from deepqmc.log import CheckpointStore, H5Logger, TensorboardMetricLogger
from deepqmc.train import train
from deepqmc.types import TrainState
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

log = logging.getLogger("deepqmc_h2")

EXACT_HA = -1.174476  # H2 at R = 1.4 bohr, Kolos & Wolniewicz
TARGETS_MHA = (0.3, 0.1)
COLUMNS = ["step", "energy_Ha", "std_Ha", "wall_s", "cpu_s"]
H2_OVERRIDES = [
    "hamil/mol=H2",
    "hamil.mol.coords=[[0.0,0.0,-0.7],[0.0,0.0,0.7]]",
    "hamil.mol.unit=bohr",
    "hamil.mol.charge=0",
    "hamil.mol.spin=0",
]


class BudgetReached(Exception):
    """The training wall-time budget is spent; the last state is checkpointed."""


@dataclass
class Clock:
    """Start of the current stage, moved on by each setup update."""

    wall: float = 0.0
    cpu: float = 0.0

    def restart(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()


class SetupAwareLogger(TensorboardMetricLogger):
    """DeepQMC's TensorBoard logger; restarts the clock on each update of
    pretraining or equilibration, so that stage time starts after them."""

    def __init__(self, workdir: str, n_mol: int, *, clock: Clock, **kwargs):
        super().__init__(workdir, n_mol, **kwargs)
        self.clock = clock

    def update(
        self, step, single_device_stats, multi_device_stats, mol_idxs, prefix=None
    ):
        super().update(
            step, single_device_stats, multi_device_stats, mol_idxs, prefix=prefix
        )
        if prefix is not None:
            self.clock.restart()


class StepRecorder(H5Logger):
    """DeepQMC's ``result.h5`` logger that also appends one CSV row per step
    and stops the run once ``budget_s`` of stage wall time is spent."""

    def __init__(
        self,
        workdir: str,
        init_step: int,
        *args,
        csv_path: Path,
        clock: Clock,
        budget_s: float | None = None,
        **kwargs,
    ):
        super().__init__(workdir, init_step, *args, **kwargs)
        self.clock, self.budget_s = clock, budget_s
        self.handle = open(csv_path, "w", newline="")  # noqa: SIM115 (see close)
        self.writer = csv.writer(self.handle)
        self.writer.writerow(COLUMNS)

    def update(self, single_device_data) -> None:
        super().update(single_device_data)
        wall = time.perf_counter() - self.clock.wall
        cpu = time.process_time() - self.clock.cpu
        # (molecule batch, electronic states) arrays; one molecule, one state
        mean = float(np.ravel(single_device_data["local_energy/mean"])[0])
        std = float(np.ravel(single_device_data["local_energy/std"])[0])
        step = int(single_device_data["step"])
        self.writer.writerow(
            [step, f"{mean:.8f}", f"{std:.6f}", f"{wall:.3f}", f"{cpu:.3f}"]
        )
        self.handle.flush()
        if self.budget_s is not None and wall >= self.budget_s:
            raise BudgetReached(f"budget of {self.budget_s:.0f} s spent at step {step}")

    def close(self) -> None:
        super().close()
        self.handle.close()


def reblock(series: np.ndarray) -> tuple[float, float]:
    """Mean and Flyvbjerg–Petersen standard error of a correlated series.

    Pairs are averaged repeatedly; the error is the naive one at the first
    level with block size B, at least 8 blocks and ``B^3 > 2 n (s_B / s_1)^4``
    (Lee, Kent, Needs and Drummond 2011), else the largest with 8 blocks.
    """
    data = np.asarray(series, dtype=np.float64)
    n, mean, levels, size = data.size, float(data.mean()), [], 1
    while data.size >= 2:
        levels.append((size, data.size, data.std(ddof=1) / math.sqrt(data.size)))
        even = data[: data.size // 2 * 2]
        data, size = 0.5 * (even[0::2] + even[1::2]), 2 * size
    if not levels:
        return mean, math.nan
    base = levels[0][2]
    for size, n_blocks, error in levels:
        if n_blocks >= 8 and size**3 > 2 * n * (error / base) ** 4:
            return mean, float(error)
    return mean, float(max([e for _, nb, e in levels if nb >= 8] or [base]))


def first_within(rows: list[dict], target_Ha: float, window: int):
    """Step and wall time at which the mean of the last ``window`` training
    energies first lies within ``target_Ha`` of exact, else (None, None)."""
    energies = np.array([r["energy_Ha"] for r in rows])
    for end in range(window, len(rows) + 1):
        if abs(energies[end - window : end].mean() - EXACT_HA) <= target_Ha:
            return rows[end - 1]["step"], rows[end - 1]["wall_s"]
    return None, None


def read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(handle)]


def median_step(rows: list[dict], column: str, skip: int = 3) -> float | None:
    """Median seconds per step in ``column`` (wall_s or cpu_s), leaving out
    the first ``skip`` steps, which include JAX compilation."""
    times = np.array([r[column] for r in rows])
    return float(np.median(np.diff(times[skip:]))) if len(times) > skip + 2 else None


def step_times(rows: list[dict], stage: str, walkers: int) -> dict:
    """Median wall and CPU seconds per step of a stage, and walker-steps/s."""
    result = {}
    for column in ("wall_s", "cpu_s"):
        seconds = median_step(rows, column)
        result[f"{stage}_step_{column}"] = seconds
        result[f"{stage}_walker_steps_per_{column}"] = (
            walkers / seconds if seconds else None
        )
    return result


def compose_task(args: argparse.Namespace) -> dict:
    overrides = [
        "task=train",
        f"ansatz={args.ansatz}",
        *H2_OVERRIDES,
        f"task.steps={args.steps}",
        f"task.electron_batch_size={args.batch}",
        f"task.pretrain_steps={args.pretrain_steps}",
        f"task.seed={args.seed}",
        *args.overrides,
    ]
    with initialize_config_module("deepqmc.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    decorrelation = cfg.task.sampler_factory.elec_sampler.samplers[0]
    if args.decorrelation is not None:
        decorrelation.length = args.decorrelation
    args.decorrelation = decorrelation.length
    cfg.task.workdir = str(args.out_dir / "deepqmc")
    return OmegaConf.to_object(cfg)["task"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=3000, help="training steps")
    parser.add_argument(
        "--budget-s",
        type=float,
        help="stop training once its wall time (s) passes this; counted like "
        "wall_s, from the end of equilibration, compilation included",
    )
    parser.add_argument(
        "--ansatz",
        default="default",
        help="DeepQMC ansatz config: default, ferminet, psiformer, ...",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=256,
        help="walkers (as wavefunctions/H2; DeepQMC's own default: 1000)",
    )
    parser.add_argument("--pretrain-steps", type=int, default=100)
    parser.add_argument(
        "--decorrelation",
        type=int,
        help="Metropolis moves per step (the sampler config's default)",
    )
    parser.add_argument("--eval-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--window",
        type=int,
        default=100,
        help="training steps averaged for time to accuracy",
    )
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, key=value")
    args = parser.parse_intermixed_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", "Creating a dataset without passing data")
    if args.out_dir.exists():
        if not args.overwrite:
            print(
                f"error: {args.out_dir} exists; pass --overwrite to replace it",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(args.out_dir)
    args.out_dir.mkdir(parents=True)
    cpus = sorted(os.sched_getaffinity(0))
    log.info(
        "jax %s, devices %s, x64 %s, CPUs allowed %s, XLA_FLAGS=%r",
        jax.__version__,
        jax.devices(),
        jax.config.jax_enable_x64,
        cpus,
        os.environ.get("XLA_FLAGS"),
    )
    if len(cpus) > 1:
        log.warning("not pinned to one CPU: JAX may run %d threads", len(cpus))

    task = compose_task(args)
    workdir = task.pop("workdir")
    for key in ("_target_", "h5_logger_constructor", "metric_logger_constructor"):
        task.pop(key)
    task = instantiate(task, _convert_="all")
    hamil = task.pop("hamil")
    ansatz = instantiate_ansatz(hamil, task.pop("ansatz"))
    clock = Clock()
    loggers = {"metric_logger_constructor": partial(SetupAwareLogger, clock=clock)}

    # Pretraining and equilibration restart the clock; training time starts after.
    clock.restart()
    setup_start = time.perf_counter()
    try:
        train(
            hamil,
            ansatz,
            workdir=workdir,
            **task,
            **loggers,
            h5_logger_constructor=partial(
                StepRecorder,
                csv_path=args.out_dir / "train.csv",
                clock=clock,
                budget_s=args.budget_s,
            ),
        )
    except BudgetReached as stop:
        log.info("training stopped: %s", stop)
    setup_s = clock.wall - setup_start
    train_rows = read_rows(args.out_dir / "train.csv")
    result = {
        "deepqmc": version("deepqmc"),
        "jax": jax.__version__,
        "ansatz": args.ansatz,
        "walkers": args.batch,
        "decorrelation": args.decorrelation,
        "overrides": args.overrides,
        "cpus_allowed": cpus,
        "reference_Ha": EXACT_HA,
        "setup_wall_s": setup_s,
        "train_steps": len(train_rows),
        "train_wall_s": train_rows[-1]["wall_s"] if train_rows else None,
        "train_cpu_s": train_rows[-1]["cpu_s"] if train_rows else None,
        **step_times(train_rows, "train", args.batch),
        "window": args.window,
    }

    # Evaluation continues from the last checkpoint's walkers, without optimiser.
    if args.eval_steps > 0:
        pattern = CheckpointStore.PATTERN.format("*")
        last = max(
            Path(workdir, "training").glob(pattern),
            key=lambda p: CheckpointStore.extract_step_from_filename(p.name),
        )
        _, state = CheckpointStore.load(last)
        task.update(opt=None, steps=args.eval_steps, pretrain_steps=None)
        clock.restart()
        train(
            hamil,
            ansatz,
            workdir=workdir,
            train_state=TrainState(state.sampler, state.params, None),
            **task,
            **loggers,
            h5_logger_constructor=partial(
                StepRecorder, csv_path=args.out_dir / "evaluate.csv", clock=clock
            ),
        )
        eval_rows = read_rows(args.out_dir / "evaluate.csv")
        energy, error = reblock(np.array([r["energy_Ha"] for r in eval_rows]))
        result.update(
            energy_Ha=energy,
            error_Ha=error,
            difference_Ha=energy - EXACT_HA,
            eval_steps=len(eval_rows),
            **step_times(eval_rows, "eval", args.batch),
        )
    for target in TARGETS_MHA:
        step, wall = first_within(train_rows, target * 1e-3, args.window)
        result[f"within_{target}_mHa"] = {"step": step, "train_wall_s": wall}
    (args.out_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("result: %s", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
