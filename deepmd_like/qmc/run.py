"""A whole variational Monte Carlo run: pretrain, train, evaluate.

A run folder holds

- ``checkpoint.pt``: parameters, optimiser state, walkers, step size, the
  random generator's state and the history so far (written atomically);
- ``train.csv``: energy, variance and acceptance of every optimisation step;
- ``evaluate.csv``: the walker-averaged local energy of every evaluation step;
- ``result.json``: the energy with its reblocking error bar;
- ``trace.png``: the energy trace against the exact or reference energy.

A killed run continues from its checkpoint (``restart=True``) to the same
numbers it would have produced.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmd_like.devices import resolve_device
from deepmd_like.errors import UserError
from deepmd_like.fileio import atomic_path, atomic_write_text
from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions, SlaterJastrow
from deepmd_like.qmc.config import VMCConfig, config_from_dict, config_to_dict
from deepmd_like.qmc.hamiltonian import local_energy
from deepmd_like.qmc.optimizer import (
    AdamEnergy,
    Spring,
    SpringOptions,
    clip_local_energies,
)
from deepmd_like.qmc.sampler import MetropolisSampler, SamplerState
from deepmd_like.qmc.stats import reblock
from deepmd_like.qmc.system import Molecule, initial_walkers, make_molecule

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "deepmd_like/vmc-checkpoint"
CHECKPOINT_VERSION = 1
TRAIN_COLUMNS = [
    "step",
    "energy_Ha",
    "variance_Ha2",
    "acceptance",
    "step_size_bohr",
    "learning_rate",
    "wall_s",
]
EVALUATE_COLUMNS = ["step", "energy_Ha", "variance_Ha2", "acceptance", "wall_s"]


def molecule_from_config(config: VMCConfig, where: str = "input") -> Molecule:
    s = config.system
    return make_molecule(s.atoms, s.unit, s.charge, s.spin, where=f"{where}: system")


def estimate_memory_bytes(config: VMCConfig, molecule: Molecule) -> float:
    """Rough peak memory of one optimisation step, in bytes.

    Counts the activations kept for the second derivatives of the Laplacian
    (about four copies of the forward pass) and the per-walker parameter
    gradients of the natural-gradient step.
    """
    a, n = config.ansatz, molecule.n_electrons
    w, atoms = config.sampler.n_walkers, molecule.n_atoms
    k = a.n_determinants
    per_walker = a.n_layers * (n * (3 * a.hidden_one + 2 * a.hidden_two) * 3)
    per_walker += a.n_layers * n * n * a.hidden_two * 3
    per_walker += k * n * n * (atoms + 4) + n * atoms * 8
    n_params = a.n_layers * (3 * a.hidden_one + 2 * a.hidden_two) * a.hidden_one
    n_params += (a.hidden_one + 2 * atoms) * k * n
    return 8.0 * (4 * w * per_walker + 3 * w * n_params + w * w)


def _memory_limit_bytes(config: VMCConfig) -> float:
    if config.max_memory_gb is not None:
        return config.max_memory_gb * 1e9
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        total = 16e9
    return 0.8 * total


def check_memory(config: VMCConfig, molecule: Molecule, where: str = "input") -> None:
    """Refuse, with one line, a system too large for the memory at hand."""
    need, limit = estimate_memory_bytes(config, molecule), _memory_limit_bytes(config)
    if need > limit:
        raise UserError(
            f"{where}: {molecule.n_electrons} electrons with "
            f"sampler.n_walkers={config.sampler.n_walkers} need about "
            f"{need / 1e9:.1f} GB, more than the {limit / 1e9:.1f} GB allowed; "
            "reduce sampler.n_walkers or the ansatz size, or raise max_memory_gb"
        )


def build_wavefunction(
    config: VMCConfig, molecule: Molecule, where: str = "input"
) -> tuple[nn.Module, nn.Module | None, float | None]:
    """The ansatz, the Hartree–Fock orbitals (if needed) and the HF energy."""
    torch.manual_seed(config.seed)
    nuclei = molecule.positions_tensor()
    charges = molecule.charges_tensor()
    a = config.ansatz
    hf_orbitals, hf_energy = None, None
    needs_hf = a.kind == "slater_jastrow" or config.pretrain.steps > 0
    if needs_hf:
        from deepmd_like.qmc.hartree_fock import hartree_fock_orbitals

        try:
            hf_orbitals, hf_energy = hartree_fock_orbitals(
                molecule, config.pretrain.basis
            )
        except UserError as err:
            raise UserError(f"{where}: pretrain.basis: {err}") from None
    if a.kind == "slater_jastrow":
        wavefunction = SlaterJastrow(
            hf_orbitals, nuclei, charges, molecule.n_up, molecule.n_down,
            nucleus_range=0.1, electron_range=a.electron_range,
        )
        # Only the Jastrow is optimised; the orbitals stay Hartree–Fock.
        for p in wavefunction.hf.parameters():
            p.requires_grad_(False)
    else:
        options = FermiNetOptions(
            n_determinants=a.n_determinants,
            hidden_one=a.hidden_one,
            hidden_two=a.hidden_two,
            n_layers=a.n_layers,
            envelope_softening=a.envelope_softening,
            nucleus_range=a.nucleus_range,
            electron_range=a.electron_range,
        )
        wavefunction = FermiNet(
            nuclei, charges, molecule.n_up, molecule.n_down, options
        )
    return wavefunction, hf_orbitals, hf_energy


def _make_optimizer(config: VMCConfig, wavefunction: nn.Module):
    o = config.optimizer
    if o.method == "adam":
        return AdamEnergy(wavefunction, o.learning_rate)
    options = SpringOptions(
        learning_rate=o.learning_rate,
        learning_rate_decay=o.learning_rate_decay,
        damping=o.damping,
        momentum=o.momentum,
        max_norm=o.max_norm,
    )
    return Spring(wavefunction, options)


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    return buffer.getvalue()


class VMCRun:
    """State and stages of one run in one folder.

    Parameters
    ----------
    config : VMCConfig
    outdir : Path
        The run folder.
    where : str
        Name of the input, for error messages.
    """

    def __init__(self, config: VMCConfig, outdir: Path, where: str = "input") -> None:
        self.config = config
        self.outdir = Path(outdir)
        self.where = where
        torch.set_num_threads(max(1, config.threads))
        self.device = resolve_device(config.device, f"{where}: device")
        self.molecule = molecule_from_config(config, where)
        check_memory(config, self.molecule, where)
        self.name = config.system.name or self.molecule.formula()
        self.wavefunction, self.hf_orbitals, self.hf_energy = build_wavefunction(
            config, self.molecule, where
        )
        self.wavefunction.to(self.device)
        if self.hf_orbitals is not None:
            self.hf_orbitals.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.sampler = MetropolisSampler(
            self.wavefunction,
            self.generator,
            target_acceptance=config.sampler.target_acceptance,
            drift=config.sampler.drift,
        )
        self.optimizer = _make_optimizer(config, self.wavefunction)
        self.stage = "pretrain"
        self.step = 0
        self.state: SamplerState | None = None
        self.train_rows: list[dict] = []
        self.evaluate_rows: list[dict] = []
        self.wall_s = {"pretrain": 0.0, "burn_in": 0.0, "train": 0.0, "evaluate": 0.0}

    # Checkpoints ---------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.outdir / "checkpoint.pt"

    def save(self) -> None:
        """Write the checkpoint and the CSV files atomically."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config_to_dict(self.config),
            "stage": self.stage,
            "step": self.step,
            "model": self.wavefunction.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "electrons": None if self.state is None else self.state.electrons,
            "step_size": None if self.state is None else self.state.step_size,
            "generator": self.generator.get_state(),
            "train_rows": self.train_rows,
            "evaluate_rows": self.evaluate_rows,
            "wall_s": self.wall_s,
            "hf_energy": self.hf_energy,
        }
        with atomic_path(self.checkpoint_path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
        atomic_write_text(
            self.outdir / "train.csv", _csv_text(TRAIN_COLUMNS, self.train_rows)
        )
        if self.evaluate_rows:
            atomic_write_text(
                self.outdir / "evaluate.csv",
                _csv_text(EVALUATE_COLUMNS, self.evaluate_rows),
            )

    def load(self, path: Path | None = None) -> None:
        """Restore everything from a checkpoint written by :meth:`save`.

        The input must describe the same run (molecule, network, walkers);
        other settings (steps, learning rate, sampler moves) may change.
        """
        path = Path(path or self.checkpoint_path)
        payload = read_checkpoint(path)
        check_same_run(payload["config"], self.config, path, self.where)
        self.wavefunction.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.stage, self.step = payload["stage"], int(payload["step"])
        self.generator.set_state(payload["generator"])
        if payload["electrons"] is not None:
            electrons = payload["electrons"].to(self.device)
            self.state = self.sampler.init(electrons, payload["step_size"])
        self.train_rows = list(payload["train_rows"])
        self.evaluate_rows = list(payload["evaluate_rows"])
        self.wall_s = dict(payload["wall_s"])
        self.hf_energy = payload.get("hf_energy", self.hf_energy)
        saved_drift = payload["config"].get("sampler", {}).get("drift", False)
        if self.state is not None and saved_drift != self.config.sampler.drift:
            # The step length was adapted to the other kind of move.
            logger.warning(
                "sampler.drift changed from %s to %s: re-adapting the step length "
                "over %d moves", saved_drift, self.config.sampler.drift,
                self.config.sampler.burn_in,
            )
            self._adapt_step(self.config.sampler.burn_in)

    # Stages --------------------------------------------------------------

    def run(self, progress: bool = True) -> dict:
        """Run the remaining stages; return the result dictionary."""
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(
                f"{self.outdir}: cannot create the run folder ({err.strerror})"
            ) from None
        if self.stage == "pretrain":
            self._pretrain()
        if self.stage == "burn_in":
            self._burn_in()
        if self.stage == "train":
            self._train(progress)
        if self.stage == "evaluate":
            self._evaluate(progress)
        return self.finish()

    def _initial_state(self) -> SamplerState:
        electrons = initial_walkers(
            self.molecule, self.config.sampler.n_walkers, self.generator,
            device=self.device,
        )
        return self.sampler.init(electrons, self.config.sampler.initial_step)

    def _pretrain(self) -> None:
        start = time.perf_counter()
        steps = self.config.pretrain.steps
        if isinstance(self.wavefunction, FermiNet) and steps > 0:
            from deepmd_like.qmc.pretrain import pretrain_orbitals

            electrons = initial_walkers(
                self.molecule, self.config.sampler.n_walkers, self.generator,
                device=self.device,
            )
            losses: list[float] = []
            state = pretrain_orbitals(
                self.wavefunction,
                self.hf_orbitals,
                electrons,
                self.generator,
                steps,
                self.config.pretrain.learning_rate,
                callback=lambda step, loss: losses.append(loss),
            )
            logger.info(
                "pretraining: %d steps, orbital loss %.3g -> %.3g",
                steps, losses[0], losses[-1],
            )
            self.state = self.sampler.init(state.electrons, state.step_size)
        else:
            self.state = self._initial_state()
        self.wall_s["pretrain"] += time.perf_counter() - start
        self.stage = "burn_in"
        self.save()

    def _burn_in(self) -> None:
        start = time.perf_counter()
        if self.state is None:
            self.state = self._initial_state()
        self._adapt_step(self.config.sampler.burn_in)
        self.wall_s["burn_in"] += time.perf_counter() - start
        self.stage = "train"
        self.step = 0
        self.save()

    def _adapt_step(self, n_moves: int) -> None:
        """Move the walkers ``n_moves`` times, adapting the step every 10."""
        for done in range(0, n_moves, 10):
            self.state, _ = self.sampler.step(self.state, min(10, n_moves - done))

    def _sample_and_measure(self, n_moves: int, adapt: bool):
        self.state, acceptance = self.sampler.step(self.state, n_moves, adapt=adapt)
        energies = local_energy(
            self.wavefunction, self.state.electrons, self.config.optimizer.laplacian
        )
        return energies, acceptance

    def _train(self, progress: bool) -> None:
        from tqdm import tqdm

        cfg = self.config
        total = cfg.optimizer.steps
        bar = tqdm(
            total=total, initial=self.step, desc=f"vmc {self.name} train",
            disable=not progress, unit="step",
        )
        started = time.perf_counter()
        wall_before = self.wall_s["train"]
        while self.step < total:
            energies, acceptance = self._sample_and_measure(
                cfg.sampler.decorrelation, adapt=True
            )
            finite = torch.isfinite(energies)
            mean = float(energies[finite].mean())
            variance = float(energies[finite].var()) if finite.sum() > 1 else 0.0
            clipped = clip_local_energies(energies, cfg.optimizer.clip_width)
            info = self.optimizer.step(self.state.electrons, clipped)
            # Parameters changed: log|psi| of the walkers must be recomputed.
            self.state = self.sampler.init(self.state.electrons, self.state.step_size)
            self.step += 1
            self.wall_s["train"] = wall_before + time.perf_counter() - started
            self.train_rows.append(
                {
                    "step": self.step,
                    "energy_Ha": mean,
                    "variance_Ha2": variance,
                    "acceptance": acceptance,
                    "step_size_bohr": self.state.step_size,
                    "learning_rate": info.get("learning_rate", float("nan")),
                    "wall_s": self.wall_s["train"],
                }
            )
            recent = [r["energy_Ha"] for r in self.train_rows[-50:]]
            bar.set_postfix(E=f"{np.mean(recent):.5f}", acc=f"{acceptance:.2f}")
            bar.update(1)
            if self.step % cfg.checkpoint_every == 0:
                self.save()
                self.plot()
        bar.close()
        self.stage = "evaluate"
        self.step = 0
        self.save()
        self.plot()

    def _evaluate(self, progress: bool) -> None:
        from tqdm import tqdm

        cfg = self.config
        total = cfg.evaluate.steps
        bar = tqdm(
            total=total, initial=self.step, desc=f"vmc {self.name} evaluate",
            disable=not progress, unit="step",
        )
        started = time.perf_counter()
        wall_before = self.wall_s["evaluate"]
        while self.step < total:
            energies, acceptance = self._sample_and_measure(
                cfg.evaluate.decorrelation, adapt=False
            )
            finite = torch.isfinite(energies)
            self.step += 1
            self.wall_s["evaluate"] = wall_before + time.perf_counter() - started
            self.evaluate_rows.append(
                {
                    "step": self.step,
                    "energy_Ha": float(energies[finite].mean()),
                    "variance_Ha2": float(energies[finite].var()),
                    "acceptance": acceptance,
                    "wall_s": self.wall_s["evaluate"],
                }
            )
            if len(self.evaluate_rows) >= 2:
                running = reblock([r["energy_Ha"] for r in self.evaluate_rows])
                bar.set_postfix(E=f"{running.mean:.5f}", err=f"{running.error:.5f}")
            bar.update(1)
            if self.step % cfg.checkpoint_every == 0:
                self.save()
        bar.close()
        self.stage = "done"
        self.save()

    # Results -------------------------------------------------------------

    def reference_energy(self) -> tuple[float | None, str]:
        if self.config.system.exact_energy is not None:
            return float(self.config.system.exact_energy), "exact"
        if self.hf_energy is not None:
            return float(self.hf_energy), f"HF/{self.config.pretrain.basis}"
        return None, ""

    def finish(self) -> dict:
        """Write ``result.json`` and ``trace.png``; return the result."""
        result: dict[str, Any] = {
            "format": "deepmd_like/vmc-result",
            "version": 1,
            "system": self.name,
            "n_electrons": self.molecule.n_electrons,
            "n_up": self.molecule.n_up,
            "n_down": self.molecule.n_down,
            "ansatz": self.config.ansatz.kind,
            "n_walkers": self.config.sampler.n_walkers,
            "train_steps": len(self.train_rows),
            "hf_energy_Ha": self.hf_energy,
            "wall_s": self.wall_s,
            "threads": torch.get_num_threads(),
        }
        exact, label = self.reference_energy()
        if len(self.evaluate_rows) >= 2:
            series = np.array([r["energy_Ha"] for r in self.evaluate_rows])
            block = reblock(series)
            result.update(
                energy_Ha=block.mean,
                error_Ha=block.error,
                block_size=block.block_size,
                blocking_converged=block.converged,
                evaluate_steps=block.n_samples,
                variance_Ha2=float(
                    np.mean([r["variance_Ha2"] for r in self.evaluate_rows])
                ),
            )
            if exact is not None:
                result.update(
                    reference_Ha=exact,
                    reference=label,
                    difference_Ha=block.mean - exact,
                    variational_ok=bool(block.mean >= exact - 3 * block.error),
                )
        text = json.dumps(result, indent=2) + "\n"
        atomic_write_text(self.outdir / "result.json", text)
        self.plot()
        return result

    def plot(self) -> None:
        """Energy trace against the reference, as ``trace.png``."""
        if not self.train_rows:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - matplotlib is an optional extra
            logger.warning("matplotlib is not installed; no trace.png written")
            return
        exact, label = self.reference_energy()
        steps = np.array([r["step"] for r in self.train_rows])
        energy = np.array([r["energy_Ha"] for r in self.train_rows])
        window = max(1, min(50, len(energy) // 10))
        smooth = np.convolve(energy, np.ones(window) / window, mode="valid")
        fig, axes = plt.subplots(1, 2 if exact is not None else 1, figsize=(10, 4))
        axes = np.atleast_1d(axes)
        axes[0].plot(steps, energy, lw=0.5, alpha=0.5, label="E per step")
        axes[0].plot(steps[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
        if exact is not None:
            axes[0].axhline(exact, color="k", ls="--", label=f"{label} {exact:.6f}")
            low = exact - 0.01 * max(1.0, abs(exact)) * 0.2
            axes[0].set_ylim(low, max(exact + 0.1, float(np.percentile(energy, 90))))
            self._plot_difference(axes[1], steps, energy, exact, label)
        axes[0].set_xlabel("optimisation step")
        axes[0].set_ylabel("energy (Ha)")
        axes[0].set_title(self.name)
        axes[0].legend()
        fig.tight_layout()
        with atomic_path(self.outdir / "trace.png", suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)


    def _plot_difference(self, ax, steps, energy, exact: float, label: str) -> None:
        """Training energy minus the reference in mHa, and the evaluated E."""
        window = max(1, min(500, len(energy) // 10))
        mean = np.convolve(energy, np.ones(window) / window, mode="valid")
        ax.axhspan(-1.6, 1.6, color="tab:green", alpha=0.15, label="±1.6 mHa")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.plot(
            steps[window - 1 :], (mean - exact) * 1e3,
            label=f"training, mean of {window} steps",
        )
        if len(self.evaluate_rows) >= 2:
            block = reblock(np.array([r["energy_Ha"] for r in self.evaluate_rows]))
            ax.errorbar(
                [steps[-1]], [(block.mean - exact) * 1e3], [3e3 * block.error],
                fmt="o", color="tab:red", capsize=4,
                label=f"evaluated: {(block.mean - exact) * 1e3:+.2f} mHa (±3σ)",
            )
        # The first, far-off steps would hide the last millihartrees.
        tail = (mean[len(mean) // 5 :] - exact) * 1e3
        ax.set_ylim(min(-2.5, tail.min() - 0.5), max(2.5, min(tail.max() + 0.5, 20)))
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(f"E − {label} (mHa)")
        ax.legend()


def read_checkpoint(path: Path) -> dict:
    """Load and check a VMC checkpoint; a clear error for anything else."""
    if not path.is_file():
        raise UserError(
            f"{path}: no checkpoint to continue from; run without --restart"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is a user error
        raise UserError(f"{path}: not a readable checkpoint ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a dpl vmc checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise UserError(
            f"{path}: damaged checkpoint (no {', '.join(missing)}); start the run "
            "again without --restart"
        )
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint version {payload['version']} is newer than this "
            f"program reads ({CHECKPOINT_VERSION}); upgrade deepmd_like"
        )
    return payload


# Files a run writes into its folder.
RUN_FILES = ("checkpoint.pt", "train.csv", "evaluate.csv", "result.json", "trace.png")
# Keys every checkpoint holds (see VMCRun.save).
CHECKPOINT_KEYS = (
    "config", "stage", "step", "model", "optimizer", "electrons", "step_size",
    "generator", "train_rows", "evaluate_rows", "wall_s",
)
# Settings a continued run must share with the run that wrote the checkpoint:
# they define the molecule, the network's shape or the walkers.
SAME_RUN_KEYS = (
    ("system", "atoms"), ("system", "unit"), ("system", "charge"),
    ("system", "spin"), ("ansatz",), ("sampler", "n_walkers"),
)


def check_same_run(saved: dict, config: VMCConfig, path: Path, where: str) -> None:
    """Refuse an input that describes another run than the checkpoint's."""
    current = config_to_dict(config)
    for keys in SAME_RUN_KEYS:
        old, new = saved, current
        for key in keys:
            old, new = old.get(key), new.get(key)
        if old != new:
            name = ".".join(keys)
            raise UserError(
                f"{where}: {name} differs from the run in {path} ({new!r} against "
                f"{old!r}); use the run's own input, or start a new run"
            )


def run_from_config(
    config: VMCConfig,
    outdir: Path,
    restart: bool = False,
    evaluate_only: bool = False,
    where: str = "input",
    progress: bool = True,
) -> dict:
    """Train and evaluate (or continue, or only evaluate) in ``outdir``."""
    run = VMCRun(config, outdir, where)
    if restart or evaluate_only:
        run.load()
    else:
        # A new run (into an empty folder or with --overwrite): nothing of an
        # old one may be left beside its results.
        for name in RUN_FILES:
            (outdir / name).unlink(missing_ok=True)
    done_training = run.stage in ("evaluate", "done")
    if restart and done_training and len(run.train_rows) < config.optimizer.steps:
        # optimizer.steps was raised after the run: train on, then evaluate anew.
        run.stage, run.step, run.evaluate_rows = "train", len(run.train_rows), []
        run.wall_s["evaluate"] = 0.0
    if evaluate_only:
        if run.stage == "train":
            logger.warning(
                "%s: training stopped at step %d of %d; evaluating that wavefunction",
                run.checkpoint_path, len(run.train_rows), config.optimizer.steps,
            )
        if run.stage in ("pretrain", "burn_in"):
            raise UserError(
                f"{run.checkpoint_path}: the run has not been trained yet; "
                "run without --evaluate-only first"
            )
        run.stage, run.step, run.evaluate_rows = "evaluate", 0, []
        run.wall_s["evaluate"] = 0.0
    return run.run(progress)


def config_from_checkpoint(path: Path) -> VMCConfig:
    """The configuration stored in a checkpoint."""
    return config_from_dict(read_checkpoint(path)["config"], str(path))
