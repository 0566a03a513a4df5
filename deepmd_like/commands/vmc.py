"""``dpl vmc``: fit a neural wavefunction by variational Monte Carlo.

    dpl vmc INPUT.yaml [-o OUTDIR] [--restart] [--evaluate-only] [--overwrite]
    dpl vmc INPUT.yaml --reference [-o OUTDIR]

The first form pretrains, optimises and evaluates the wavefunction in OUTDIR
(default a fresh ``runs/vmc-NAME-*`` folder). ``--restart`` continues a
killed run from OUTDIR/checkpoint.pt (or, after ``optimizer.steps`` was raised
in INPUT.yaml, trains a finished run on and evaluates it again);
``--evaluate-only`` measures the energy
of a trained checkpoint again, continuing from its walkers. ``--reference``
computes Hartree–Fock, CCSD(T) and (for small systems) FCI energies with
PySCF for the same molecule instead, into OUTDIR/reference.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from deepmd_like.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vmc",
        help="neural-wavefunction variational Monte Carlo for a small molecule",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="YAML input (see wavefunctions/*/input.yaml)")
    parser.add_argument("-o", "--output", help="run folder (default runs/vmc-NAME-*)")
    parser.add_argument(
        "--restart", action="store_true", help="continue from OUTDIR/checkpoint.pt"
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="only evaluate the trained wavefunction in OUTDIR",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="compute PySCF HF/CCSD(T)/FCI energies instead of running VMC",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="reuse a non-empty OUTDIR"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar"
    )
    parser.set_defaults(func=run)


def _outdir(args: argparse.Namespace, name: str) -> Path:
    from deepmd_like.fileio import fresh_run_dir

    if args.output is None:
        if args.restart or args.evaluate_only:
            raise UserError("--restart and --evaluate-only need -o OUTDIR of the run")
        # The system name may hold characters a folder name cannot.
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
        return fresh_run_dir("runs", prefix=f"vmc-{safe}")
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: exists and is not a folder; choose another -o")
    if args.restart or args.evaluate_only:
        if not (outdir / "checkpoint.pt").is_file():
            raise UserError(f"{outdir}: no checkpoint.pt to continue from")
        return outdir
    if outdir.exists() and any(outdir.iterdir()):
        if not args.overwrite:
            raise UserError(
                f"{outdir} exists and is not empty; pass --overwrite, --restart, "
                "or another -o"
            )
    parent = outdir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{outdir}: {parent} is not a folder; choose another -o")
    return outdir


def run(args: argparse.Namespace) -> int:
    from deepmd_like.qmc.config import load_config
    from deepmd_like.qmc.run import molecule_from_config, run_from_config

    if args.restart and args.evaluate_only:
        raise UserError("use either --restart or --evaluate-only, not both")
    config = load_config(args.input)
    molecule = molecule_from_config(config, args.input)
    name = config.system.name or molecule.formula()
    if args.reference:
        return _reference(args, config, molecule, name)
    outdir = _outdir(args, name)
    result = run_from_config(
        config,
        outdir,
        restart=args.restart,
        evaluate_only=args.evaluate_only,
        where=args.input,
        progress=not args.no_progress,
    )
    line = f"{name}: run folder {outdir}"
    if "energy_Ha" in result:
        line += f"; E = {result['energy_Ha']:.6f} +- {result['error_Ha']:.6f} Ha"
        if "difference_Ha" in result:
            line += (
                f" ({result['reference']} {result['reference_Ha']:.6f}, "
                f"E - ref = {1e3 * result['difference_Ha']:+.2f} mHa)"
            )
    print(line)
    return 0


def _reference(args, config, molecule, name) -> int:
    from deepmd_like.fileio import atomic_write_text, fresh_run_dir, refuse_overwrite
    from deepmd_like.qmc.hartree_fock import reference_energies

    reference = config.reference
    try:
        energies = reference_energies(molecule, reference.basis, reference.fci)
    except (RuntimeError, ValueError) as err:
        raise UserError(
            f"{args.input}: PySCF could not compute the references in basis "
            f"{reference.basis!r} (reference.basis): {err}"
        ) from None
    energies["system"] = name
    if config.system.exact_energy is not None:
        energies["exact"] = config.system.exact_energy
    outdir = Path(args.output) if args.output else fresh_run_dir("runs", f"ref-{name}")
    path = refuse_overwrite(outdir / "reference.json", args.overwrite)
    atomic_write_text(path, json.dumps(energies, indent=2) + "\n")
    shown = ", ".join(
        f"{k} {v:.6f}"
        for k, v in energies.items()
        if k in ("hf", "ccsd_t", "fci", "exact")
    )
    print(f"{name} ({config.reference.basis}): {shown} Ha -> {path}")
    return 0
