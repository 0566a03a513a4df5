"""``dpl train``: train a DeepPot-SE potential from an input file.

    dpl train INPUT.json|yaml [-o OUTDIR] [--restart CHECKPOINT]
              [--init-model MODEL] [--overwrite]

The input keeps DeePMD-kit's layout and key names (model, learning_rate,
loss, training); datasets are the project's HDF5 files, ``FILE.h5`` or
``FILE.h5:NAME,NAME``. OUTDIR (default a fresh ``runs/train-*`` folder)
receives ``input.json`` (the input with every default and ``sel`` filled in),
``lcurve.csv``, ``checkpoint.pt`` and ``checkpoint-STEP.pt``.

``--restart OUTDIR/checkpoint.pt`` continues a run exactly where it stopped
(same batches, same learning rates, same weights as an uninterrupted run).
``--init-model CHECKPOINT`` starts a new run (new schedule) from trained
weights and statistics: fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from deepmd_like.errors import UserError

log = logging.getLogger(__name__)

# Files whose presence marks a folder as holding a previous run.
_RUN_FILES = ("checkpoint.pt", "lcurve.csv", "input.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a DeepPot-SE potential from an input file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="input file (JSON or YAML, DeePMD-kit layout)")
    parser.add_argument("-o", "--output", help="run folder (default runs/train-*)")
    parser.add_argument(
        "--restart", metavar="CHECKPOINT", help="continue from this checkpoint"
    )
    parser.add_argument(
        "--init-model",
        metavar="MODEL",
        help="start from the weights of this checkpoint (fine-tuning)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="reuse a folder holding a run"
    )
    parser.add_argument(
        "--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _output_dir(args: argparse.Namespace) -> Path | None:
    """The run folder, or None for a fresh one; refuse to clobber a run."""
    if args.output is None:
        if args.restart is not None:
            return Path(args.restart).resolve().parent
        return None
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} exists and is not a folder")
    if args.restart is None and not args.overwrite and out.is_dir():
        taken = [name for name in _RUN_FILES if (out / name).exists()]
        if taken:
            raise UserError(
                f"{out} already holds a run ({taken[0]}); pass --overwrite to "
                "replace it or --restart to continue it"
            )
    return out


def _device(name: str | None):
    from deepmd_like.devices import resolve_device

    return resolve_device(name, "--device")


def _load_config(args: argparse.Namespace):
    """The input's configuration; with --init-model a missing ``model`` section
    is taken from the checkpoint."""
    from deepmd_like.config import config_from_dict, load_input

    path = Path(args.input)
    if args.init_model and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception:  # noqa: BLE001 - load_input reports it properly
            data = None
        if isinstance(data, dict) and "model" not in data:
            from deepmd_like.train.checkpoint import load_checkpoint

            data["model"] = load_checkpoint(args.init_model)["model_config"]
            log.info("model section taken from %s", args.init_model)
            try:
                return config_from_dict(data, base_dir=path.parent)
            except UserError as err:
                raise UserError(f"{path}: {err}") from None
    return load_input(path)


def run(args: argparse.Namespace) -> int:
    from deepmd_like.fileio import atomic_write_text, fresh_run_dir
    from deepmd_like.train.trainer import Trainer

    config = _load_config(args)
    out = _output_dir(args)
    trainer = Trainer(
        config,
        output_dir=out if out is not None else Path("."),
        restart=Path(args.restart) if args.restart else None,
        init_model=Path(args.init_model) if args.init_model else None,
        device=_device(args.device),
        progress=not args.no_progress,
    )

    # Everything is checked; only now does anything get written.
    if out is None:
        out = fresh_run_dir("runs", "train")
    out.mkdir(parents=True, exist_ok=True)
    trainer.output_dir = out
    resolved = config.to_dict()
    resolved["model"] = trainer.model_config
    resolved["training"]["seed"] = trainer.seed
    atomic_write_text(out / "input.json", json.dumps(resolved, indent=2) + "\n")
    log.info("run folder %s", out)
    result = trainer.run()
    m = result.last_metrics
    print(
        f"trained {result.steps} steps ({result.steps_per_second:.2f} steps/s); "
        f"last validation: energy RMSE "
        f"{m.get('valid_energy_rmse_per_atom_eV', float('nan')):.3e} eV/atom, "
        f"force RMSE {m.get('valid_force_rmse_eV_per_A', float('nan')):.4f} eV/Å"
    )
    print(f"checkpoint: {result.checkpoint}")
    return 0
