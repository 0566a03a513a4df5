"""The training loop behind ``dpl train``.

Order of work, so that a bad input never leaves files behind:

1. open and check every dataset (elements, emptiness, labels);
2. resolve ``sel: "auto"`` and ``batch_size: "auto"`` from the data;
3. build the model; fit its input statistics and per-element energy shifts
   on the training data (or take them from ``--init-model``/``--restart``);
4. only then create the run folder and start the steps.

Each step draws one batch (:mod:`deepmd_like.train.sampling`), evaluates
energies and forces (and virials when the loss needs them) with
:func:`deepmd_like.nn.evaluate.evaluate`, and takes one Adam step with the
learning rate of :class:`~deepmd_like.train.schedule.ExponentialDecay`. Every
``disp_freq`` steps a line goes to ``lcurve.csv``; every ``save_freq`` steps a
checkpoint. Randomness comes from the seed alone and is part of the
checkpoint, so ``--restart`` continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from deepmd_like.config import InputConfig, auto_sel_ratio
from deepmd_like.errors import UserError
from deepmd_like.train import model_glue
from deepmd_like.train.checkpoint import (
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from deepmd_like.train.lcurve import LearningCurve
from deepmd_like.train.loss import EnergyLoss, ErrorMetrics
from deepmd_like.train.sampling import (
    SystemSampler,
    resolve_batch_size,
    system_probabilities,
)
from deepmd_like.train.schedule import ExponentialDecay
from deepmd_like.train.statistics import auto_sel, energy_shifts, neighbour_counts
from deepmd_like.train.systems import TrainSystem, open_systems, type_indices

log = logging.getLogger(__name__)

# Frames per neighbour-list call when counting neighbours for sel: "auto".
_STAT_FRAMES_PER_CALL = 8


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    checkpoint: Path
    steps: int
    last_metrics: dict[str, float]
    steps_per_second: float


def _float_dtype(precision: str) -> torch.dtype:
    return torch.float32 if precision == "float32" else torch.float64


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.float64


def to_model(batch: dict[str, torch.Tensor], dtype: torch.dtype, device) -> dict:
    """A batch with floating inputs in the model's dtype and device.

    Labels (energy, forces, virial) stay float64 so errors are measured in
    full precision.
    """
    out = {}
    for key, value in batch.items():
        if key in ("positions", "cell") and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.to(device)
    return out


def resolve_sel(
    config: InputConfig, systems: list[TrainSystem]
) -> tuple[list[int], list[int]]:
    """``sel`` to use and the largest neighbour counts seen in the data."""
    type_map = config.model.type_map
    rcut = config.model.descriptor.rcut
    if not isinstance(config.model.descriptor.sel, str):
        # Given explicitly: the model itself reports atoms beyond sel.
        return list(config.model.descriptor.sel), []
    max_counts = torch.zeros(len(type_map), dtype=torch.int64)
    min_distance = math.inf
    for system in systems:
        for start in range(0, system.n_frames, _STAT_FRAMES_PER_CALL):
            idx = list(
                range(start, min(start + _STAT_FRAMES_PER_CALL, system.n_frames))
            )
            batch = system.batch(idx)
            types = type_indices(batch["atomic_numbers"], type_map)
            counts, dmin = neighbour_counts(batch, types, len(type_map), rcut)
            max_counts = torch.maximum(max_counts, counts)
            min_distance = min(min_distance, dmin)
    counts = [int(c) for c in max_counts]
    log.info(
        "neighbours within %.3g Å: at most %s per element %s; closest pair %.3f Å",
        rcut,
        counts,
        type_map,
        min_distance,
    )
    sel = auto_sel(
        counts, auto_sel_ratio(config.model.descriptor.sel, "model.descriptor.sel")
    )
    log.info("sel: %s resolves to %s", config.model.descriptor.sel, sel)
    return sel, counts


def fit_energy_shifts(config: InputConfig, systems: list[TrainSystem]) -> np.ndarray:
    """Per-element energies (eV) by least squares on all training energies."""
    type_map = config.model.type_map
    rows, energies = [], []
    for system in systems:
        data = system.dataset.read_frames(system.index)
        labelled = np.asarray(data["has_energy"], dtype=bool)
        types = type_indices(torch.as_tensor(system.info.atomic_numbers), type_map)
        count = np.bincount(types.numpy(), minlength=len(type_map)).astype(np.float64)
        rows.append(np.repeat(count[None, :], int(labelled.sum()), axis=0))
        energies.append(np.asarray(data["energy"], dtype=np.float64)[labelled])
    shifts = energy_shifts(np.concatenate(rows), np.concatenate(energies))
    log.info(
        "per-element energy shifts (eV): %s",
        ", ".join(f"{s}={v:.6f}" for s, v in zip(type_map, shifts)),
    )
    return shifts


def statistics_batches(
    config: InputConfig, systems: list[TrainSystem], seed: int
) -> list[dict[str, torch.Tensor]]:
    """``data_stat_nbatch`` batches of each training system, for input statistics."""
    rng = np.random.default_rng(seed)
    batches = []
    for system in systems:
        order = rng.permutation(system.n_frames)
        n = min(system.n_frames, config.model.data_stat_nbatch * system.batch_size)
        for start in range(0, n, system.batch_size):
            batches.append(
                system.batch([int(i) for i in order[start : start + system.batch_size]])
            )
    return batches


# Model settings that do not change the architecture or the weights' meaning:
# an --init-model run may give other values (the checkpoint's are kept).
_FREE_MODEL_KEYS = {"seed", "sel_overflow", "data_stat_nbatch", "data_stat_protect"}


def _architecture_difference(
    ours: Any, theirs: Any, where: str
) -> tuple[str, Any, Any] | None:
    """The first ``(key, input value, checkpoint value)`` that differs, or None.

    ``sel: "auto"`` in the input matches any checkpoint ``sel``.
    """
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in list(ours) + [k for k in theirs if k not in ours]:
            if key in _FREE_MODEL_KEYS:
                continue
            if key == "sel" and ours.get(key) == "auto":
                continue
            found = _architecture_difference(
                ours.get(key), theirs.get(key), f"{where}.{key}"
            )
            if found is not None:
                return found
        return None
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        ours, theirs = list(ours), list(theirs)
    if ours != theirs:
        return where, ours, theirs
    return None


class Trainer:
    """One training run: model, optimiser, data sampling and output.

    Parameters
    ----------
    config : InputConfig
        The validated input.
    output_dir : Path
        Run folder (created when :meth:`run` starts).
    restart : Path, optional
        A checkpoint to continue from (same input, same data).
    init_model : Path, optional
        A checkpoint whose weights and statistics start a new run.
    device : torch.device or str, optional
    progress : bool
        Show a progress bar on a terminal.
    """

    def __init__(
        self,
        config: InputConfig,
        output_dir: Path,
        restart: Path | None = None,
        init_model: Path | None = None,
        device: torch.device | str | None = None,
        progress: bool = True,
    ) -> None:
        if restart is not None and init_model is not None:
            raise UserError("give either --restart or --init-model, not both")
        self.config = config
        self.output_dir = Path(output_dir)
        self.device = (
            torch.device(device) if device is not None else torch.device("cpu")
        )
        self.progress = progress
        training = config.training
        if training.num_threads:
            torch.set_num_threads(training.num_threads)
        restart_state = load_checkpoint(restart) if restart is not None else None
        init_state = load_checkpoint(init_model) if init_model is not None else None
        if restart_state is not None:
            self._check_restart(restart_state, restart)
        self.seed = (
            training.seed
            if training.seed is not None
            else int(np.random.SeedSequence().entropy % (2**31))
        )
        if restart_state is not None:
            self.seed = int(restart_state["seed"])

        # 1. Data.
        type_map = config.model.type_map
        self.train_systems = open_systems(
            training.training_data.systems, type_map, "training_data"
        )
        self.valid_systems = (
            open_systems(training.validation_data.systems, type_map, "validation_data")
            if training.validation_data is not None
            else []
        )

        # 2. Batch sizes and sampling probabilities.
        for system in self.train_systems:
            system.batch_size = resolve_batch_size(
                training.training_data.batch_size, system.n_atoms
            )
        for system in self.valid_systems:
            assert training.validation_data is not None
            system.batch_size = resolve_batch_size(
                training.validation_data.batch_size, system.n_atoms
            )
        self.sampler = self._sampler(
            self.train_systems, training.training_data, self.seed
        )
        self.valid_sampler = (
            self._sampler(self.valid_systems, training.validation_data, self.seed + 1)
            if self.valid_systems
            else None
        )

        # 3. Model, statistics, optimiser.
        if restart_state is not None:
            model_config = restart_state["model_config"]
        elif init_state is not None:
            model_config = self._init_model_config(init_state, init_model)
        else:
            model_config = self._fresh_model_config()
        self.model_config = model_config
        torch.manual_seed(self.seed)
        self.model = model_glue.build_model(model_config).to(self.device)
        if restart_state is not None:
            self.model.load_state_dict(restart_state["model_state"])
        elif init_state is not None:
            self.model.load_state_dict(init_state["model_state"])
            log.info("weights and statistics taken from %s", init_model)
        else:
            self._fit_statistics()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.learning_rate.start_lr
        )
        self.schedule = ExponentialDecay(
            start_lr=config.learning_rate.start_lr,
            stop_lr=config.learning_rate.stop_lr,
            decay_steps=config.learning_rate.decay_steps,
            numb_steps=training.numb_steps,
            decay_rate=config.learning_rate.decay_rate,
        )
        self.loss = EnergyLoss(config.loss, config.learning_rate.start_lr)
        self.step = 0
        if restart_state is not None:
            self.optimizer.load_state_dict(restart_state["optimizer_state"])
            self.sampler.load_state_dict(restart_state["sampler_state"])
            if self.valid_sampler is not None and restart_state.get(
                "valid_sampler_state"
            ):
                self.valid_sampler.load_state_dict(restart_state["valid_sampler_state"])
            torch.set_rng_state(restart_state["torch_rng_state"])
            self.step = int(restart_state["step"])
            log.info("continuing from %s at step %d", restart, self.step)
        self.restarted = restart_state is not None
        self.dtype = _model_dtype(self.model)
        # Loss of every step of this process, for tests and diagnostics.
        self.losses: list[float] = []

    # ------------------------------------------------------------- set-up
    @staticmethod
    def _sampler(systems: list[TrainSystem], data_config, seed: int) -> SystemSampler:
        n_batches = [max(s.n_frames // s.batch_size, 1) for s in systems]
        probs = system_probabilities(
            n_batches, data_config.auto_prob, data_config.sys_probs
        )
        return SystemSampler(
            [s.n_frames for s in systems], [s.batch_size for s in systems], probs, seed
        )

    def _fresh_model_config(self) -> dict[str, Any]:
        config = copy.deepcopy(self.config)
        sel, _ = resolve_sel(config, self.train_systems)
        config.model.descriptor.sel = sel
        model_config = config.model.to_dict()
        for section in ("descriptor", "fitting_net"):
            if model_config[section]["seed"] is None:
                model_config[section]["seed"] = self.seed
        return model_config

    def _init_model_config(self, state: dict[str, Any], path: Path | None) -> dict:
        model_config = state["model_config"]
        if list(model_config["type_map"]) != list(self.config.model.type_map):
            raise UserError(
                f"--init-model {path} has type_map {model_config['type_map']} but the "
                f"input has {self.config.model.type_map}; they must be equal"
            )
        difference = _architecture_difference(
            self.config.model.to_dict(), model_config, "model"
        )
        if difference is not None:
            key, ours, theirs = difference
            raise UserError(
                f"{key}: input {ours!r} differs from the checkpoint's {theirs!r}; "
                "fine-tuning keeps the checkpoint's architecture — remove or match "
                "the model section"
            )
        return model_config

    def _check_restart(self, state: dict[str, Any], path: Path | None) -> None:
        if int(state["numb_steps"]) != self.config.training.numb_steps:
            log.warning(
                "the checkpoint %s was written by a run of %d steps; this run has %d, "
                "so its learning-rate schedule differs",
                path,
                int(state["numb_steps"]),
                self.config.training.numb_steps,
            )

    def _fit_statistics(self) -> None:
        shifts = fit_energy_shifts(self.config, self.train_systems)
        batches = statistics_batches(self.config, self.train_systems, self.seed)
        dtype = _model_dtype(self.model)
        batches = [to_model(b, dtype, self.device) for b in batches]
        model_glue.set_statistics(self.model, batches, shifts)

    # ------------------------------------------------------------- running
    def _predict(self, batch: dict[str, torch.Tensor], training: bool) -> dict:
        return model_glue.evaluate(
            self.model,
            batch,
            forces=self.loss.uses_forces or not training,
            virial=self.loss.uses_virial,
            create_graph=training,
        )

    def validate(self) -> dict[str, float]:
        """Errors on ``numb_btch`` validation batches (NaN without validation data)."""
        metrics = ErrorMetrics()
        if self.valid_sampler is None:
            return metrics.result()
        assert self.config.training.validation_data is not None
        for _ in range(self.config.training.validation_data.numb_btch):
            index, frames = self.valid_sampler.next()
            batch = to_model(
                self.valid_systems[index].batch(frames), self.dtype, self.device
            )
            prediction = self._predict(batch, training=False)
            metrics.update(_detached(prediction), batch)
        return metrics.result()

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint contents at the current step."""
        return {
            "model_config": self.model_config,
            "model_state": {
                k: v.detach().cpu() for k, v in self.model.state_dict().items()
            },
            "type_map": list(self.model_config["type_map"]),
            "step": self.step,
            "numb_steps": self.config.training.numb_steps,
            "seed": self.seed,
            "optimizer_state": self.optimizer.state_dict(),
            "sampler_state": self.sampler.state_dict(),
            "valid_sampler_state": (
                self.valid_sampler.state_dict() if self.valid_sampler else {}
            ),
            "torch_rng_state": torch.get_rng_state(),
            "config": self.config.to_dict(),
        }

    def save(self) -> Path:
        """Write ``checkpoint-STEP.pt`` and ``checkpoint.pt``; return the latter."""
        state = self.state_dict()
        numbered = self.output_dir / f"checkpoint-{self.step}.pt"
        latest = self.output_dir / "checkpoint.pt"
        if self.config.training.max_ckpt_keep > 0:
            save_checkpoint(numbered, state)
            prune_checkpoints(self.output_dir, self.config.training.max_ckpt_keep)
        save_checkpoint(latest, state)
        return latest

    def run(
        self, callback: Callable[[int, dict[str, float]], None] | None = None
    ) -> TrainResult:
        """Train until ``numb_steps``; return where the results are."""
        training = self.config.training
        self.output_dir.mkdir(parents=True, exist_ok=True)
        lcurve = LearningCurve(
            self.output_dir / training.disp_file,
            resume_step=self.step if self.restarted else None,
        )
        self.model.train()
        start_step, start_time = self.step, time.perf_counter()
        last: dict[str, float] = {}
        bar = _progress_bar(self.progress, training.numb_steps, self.step)
        try:
            while self.step < training.numb_steps:
                lr = self.schedule(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                index, frames = self.sampler.next()
                batch = to_model(
                    self.train_systems[index].batch(frames), self.dtype, self.device
                )
                prediction = self._predict(batch, training=True)
                loss = self.loss(prediction, batch, lr)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                self.losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)

                done = self.step
                if (
                    done == 1
                    or done % training.disp_freq == 0
                    or done == training.numb_steps
                ):
                    train_metrics = ErrorMetrics()
                    train_metrics.update(_detached(prediction), batch)
                    last = self._display(
                        lcurve, lr, train_metrics.result(), start_step, start_time
                    )
                    if callback is not None:
                        callback(done, last)
                if done % training.save_freq == 0 or done == training.numb_steps:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - start_time
        rate = (self.step - start_step) / elapsed if elapsed > 0 else math.nan
        log.info("finished %d steps at %.2f steps/s", self.step, rate)
        return TrainResult(
            self.output_dir, self.output_dir / "checkpoint.pt", self.step, last, rate
        )

    def _display(
        self,
        lcurve: LearningCurve,
        lr: float,
        train: dict[str, float],
        start_step: int,
        start_time: float,
    ) -> dict[str, float]:
        valid = self.validate()
        elapsed = time.perf_counter() - start_time
        rate = (self.step - start_step) / elapsed if elapsed > 0 else math.nan
        remaining = (
            (self.config.training.numb_steps - self.step) / rate
            if rate > 0
            else math.nan
        )
        row = {
            "step": self.step,
            "lr": lr,
            "train_energy_rmse_per_atom_eV": train["energy_rmse_per_atom"],
            "train_force_rmse_eV_per_A": train["force_rmse"],
            "valid_energy_rmse_per_atom_eV": valid["energy_rmse_per_atom"],
            "valid_force_rmse_eV_per_A": valid["force_rmse"],
            "train_virial_rmse_per_atom_eV": train["virial_rmse_per_atom"],
            "valid_virial_rmse_per_atom_eV": valid["virial_rmse_per_atom"],
            "wall_time_s": elapsed,
        }
        lcurve.write(row)
        log.info(
            "step %d  lr %.2e  train E %.2e eV/atom F %.3f eV/Å  valid E %.2e eV/atom "
            "F %.3f eV/Å  %.2f steps/s  %s left",
            self.step,
            lr,
            train["energy_rmse_per_atom"],
            train["force_rmse"],
            valid["energy_rmse_per_atom"],
            valid["force_rmse"],
            rate,
            _format_seconds(remaining),
        )
        return row


def _detached(prediction: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in prediction.items() if isinstance(v, torch.Tensor)}


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    # disable=None turns the bar off when stderr is not a terminal (logs).
    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, disable=None
    )
