"""``dpl md``: run a simulation deck.

    dpl md DECK.yaml [-o OUTDIR] [--restart] [--overwrite] [--no-progress]

The deck (YAML) names the structure, the potential, the stages (NVE, NVT
with a Langevin, Bussi or Nosé–Hoover-chain thermostat, NPT), the reporters
and the analysis; see ``deepmd_like.md.deck`` and the decks in ``md/``.
OUTDIR (default ``runs/md-NAME``, NAME the deck's folder for a file called
``deck.yaml``, else the deck's file name) receives ``deck.yaml`` (a copy),
``thermo.csv``, the trajectory (``trajectory.h5`` in the dataset format, or
``.extxyz``), ``checkpoint.pt``, ``final.extxyz``, ``run.json`` (speed and
final state) and, if the deck asks, ``analysis.json`` with PNG plots.

``--restart`` continues a killed run in OUTDIR from its latest checkpoint;
the result equals that of a run that was never interrupted, bit for bit, in
float64 and in float32 on one thread. float32 (``dtype: float32``) on several
CPU threads is not bit-reproducible (parallel float32 sums round differently
from run to run); set OMP_NUM_THREADS=1 or use float64 for exact repeats and
restarts, otherwise they agree only statistically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepmd_like.errors import UserError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "md",
        help="run molecular dynamics from a deck (YAML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("deck", help="simulation deck (YAML)")
    parser.add_argument("-o", "--output", help="output folder (default runs/md-NAME)")
    parser.add_argument(
        "--restart", action="store_true", help="continue the run in the output folder"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier run"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def default_output(deck_path: str | Path) -> Path:
    """``runs/md-NAME`` for a deck file."""
    path = Path(deck_path)
    name = path.parent.resolve().name if path.stem == "deck" else path.stem
    return Path("runs") / f"md-{name}"


def run(args: argparse.Namespace) -> int:
    from deepmd_like.md.deck import load_deck
    from deepmd_like.md.run import run_deck

    if args.restart and args.overwrite:
        raise UserError("--restart and --overwrite exclude each other; pick one")
    deck = load_deck(args.deck)
    outdir = Path(args.output) if args.output else default_output(args.deck)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"-o {outdir} exists and is not a folder")
    summary = run_deck(
        deck,
        outdir,
        restart=args.restart,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    print(f"output: {summary.outdir}")
    if summary.steps_run:
        print(
            f"{summary.steps_run} steps in {summary.wall_s:.1f} s: "
            f"{summary.steps_run / summary.wall_s:.1f} steps/s, "
            f"{summary.ns_per_day:.3g} ns/day, "
            f"{100 * summary.force_fraction:.0f}% in force calls; "
            f"final T {summary.final_temperature_K:.1f} K"
        )
    else:
        print("the run was already complete")
    for key, value in summary.analysis.items():
        if isinstance(value, float):
            print(f"{key}: {value:.4g}")
        else:
            print(f"{key}: {value}")
    return 0
