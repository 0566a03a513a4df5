"""``dpl test``: errors of a potential on a labelled dataset.

    dpl test -m MODEL -s DATA.h5[:NAME,...] [--json OUT.json] [--plots DIR]
             [--batch-size N] [--overwrite]

MODEL is a frozen model (``dpl freeze``) or a training checkpoint. Reported:
energy RMSE and MAE (total, eV, and per atom, eV/atom), force RMSE and MAE
(eV/Å) over labelled force components, and virial RMSE (eV and eV/atom) where
frames carry virials; overall and per system. The definitions are those of
the training log (``lcurve.csv``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from deepmd_like.errors import UserError

_ROWS = (
    ("energy_rmse_per_atom", "energy RMSE per atom", "eV/atom"),
    ("energy_mae_per_atom", "energy MAE per atom", "eV/atom"),
    ("energy_rmse", "energy RMSE", "eV"),
    ("energy_mae", "energy MAE", "eV"),
    ("force_rmse", "force RMSE", "eV/Å"),
    ("force_mae", "force MAE", "eV/Å"),
    ("virial_rmse", "virial RMSE", "eV"),
    ("virial_rmse_per_atom", "virial RMSE per atom", "eV/atom"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "test",
        help="energy/force/virial errors of a potential on a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-m", "--model", required=True, help="frozen model or checkpoint"
    )
    parser.add_argument(
        "-s", "--system", required=True, metavar="DATA", help="FILE.h5[:NAME,...]"
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the metrics as JSON")
    parser.add_argument("--plots", metavar="DIR", help="write parity plots (PNG) here")
    parser.add_argument(
        "--batch-size", type=int, default=4, help="structures per evaluation (4)"
    )
    parser.add_argument(
        "--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing output files"
    )
    parser.set_defaults(func=run)


def _format(value: float) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"


def run(args: argparse.Namespace) -> int:
    from deepmd_like import load_model
    from deepmd_like.fileio import atomic_write_text, refuse_overwrite
    from deepmd_like.train.evaluation import (
        check_plot_folder,
        parity_plots,
        test_model,
    )

    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    json_path = refuse_overwrite(args.json, args.overwrite) if args.json else None
    if args.plots:
        check_plot_folder(Path(args.plots), args.overwrite)
    if not Path(args.model).is_file():
        raise UserError(f"model {args.model} does not exist")
    from deepmd_like.commands.train import _device

    model = load_model(args.model, device=_device(args.device))
    result = test_model(model, args.system, batch_size=args.batch_size)

    overall = result.overall
    print(f"# {args.model} on {args.system}: {overall['n_structures']} structures")
    for key, label, unit in _ROWS:
        value = overall[key]
        if key.startswith("virial") and math.isnan(value):
            continue
        print(f"{label:<22} {_format(value):>12} {unit}")
    if len(result.systems) > 1:
        for name, metrics in result.systems.items():
            print(
                f"  {name}: energy RMSE {_format(metrics['energy_rmse_per_atom'])} "
                f"eV/atom, force RMSE {_format(metrics['force_rmse'])} eV/Å "
                f"({metrics['n_structures']} structures)"
            )
    if args.plots:
        for path in parity_plots(result, Path(args.plots), overwrite=args.overwrite):
            print(f"wrote {path}")
    if json_path is not None:

        def clean(metrics: dict) -> dict:
            return {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in metrics.items()
            }

        payload = {
            "model": str(args.model),
            "data": str(args.system),
            "units": {
                "energy": "eV",
                "energy_per_atom": "eV/atom",
                "force": "eV/Angstrom",
                "virial": "eV",
                "virial_per_atom": "eV/atom",
            },
            "overall": clean(overall),
            "systems": {name: clean(m) for name, m in result.systems.items()},
        }
        atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
