"""``dpl data``: convert, inspect, check, split, merge and export datasets."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``dpl data`` and its subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="convert, inspect, check, split, merge and export HDF5 datasets",
        description="Work with HDF5 datasets of energies, forces and virials.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _help(parser))

    convert = sub.add_parser(
        "convert",
        help="convert DeePMD, extxyz/ASE, ASE db or npz sources to HDF5",
        description="Convert sources into one HDF5 dataset; units are converted "
        "on the way in (defaults: eV, Å; the force unit follows energy/length).",
    )
    convert.add_argument("sources", nargs="+", metavar="SRC")
    convert.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    convert.add_argument(
        "--format", default="auto",
        choices=("auto", "deepmd", "extxyz", "ase", "db", "npz", "h5"),
        help="source format (default: by file type)",
    )
    convert.add_argument("--ase-format", metavar="NAME",
                         help="ASE format name, e.g. vasp-out, espresso-out")
    convert.add_argument(
        "--energy-unit", metavar="U", help="e.g. eV, Hartree, kcal/mol"
    )
    convert.add_argument("--force-unit", metavar="U", help="e.g. eV/Å, Hartree/Bohr")
    convert.add_argument("--length-unit", metavar="U", help="e.g. Angstrom, Bohr, nm")
    convert.add_argument("--stress-unit", metavar="U", help="e.g. eV/Å^3, GPa, kbar")
    convert.add_argument("--energy-key", default="energy", metavar="K")
    convert.add_argument("--forces-key", default="forces", metavar="K")
    convert.add_argument("--stress-key", default="stress", metavar="K")
    convert.add_argument("--virial-key", default="virial", metavar="K")
    convert.add_argument(
        "--type-map", metavar="EL,EL,...",
        help="element of each DeePMD type index (overrides type_map.raw)",
    )
    convert.add_argument("--level-of-theory", metavar="TEXT",
                         help="stored with every system, e.g. 'PBE/PAW 800 eV'")
    convert.add_argument(
        "--allow-unlabelled", action="store_true",
        help="accept sources without any energy (structures to label later)",
    )
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(func=_convert)

    info = sub.add_parser("info", help="summarise a dataset",
                          description="Systems, frames, elements, ranges, units, "
                          "provenance.")
    info.add_argument("file", metavar="FILE.h5")
    info.set_defaults(func=_info)

    check = sub.add_parser(
        "check", help="validate a dataset (exit 2 if anything is wrong)",
        description="Report non-finite values, atoms too close, shape problems, "
        "per-atom energy outliers and missing labels, naming system, frame and atoms.",
    )
    check.add_argument("file", metavar="FILE.h5")
    check.add_argument("--min-distance", type=float, default=0.1, metavar="Å")
    check.add_argument("--outlier-sigma", type=float, default=20.0, metavar="Z",
                       help="robust z-score limit of per-atom energies (default 20)")
    check.set_defaults(func=_check)

    split = sub.add_parser(
        "split", help="split into PREFIX.train.h5 and PREFIX.valid.h5"
    )
    split.add_argument("file", metavar="FILE.h5")
    split.add_argument(
        "--validation", type=float, required=True, metavar="FRACTION",
        help="share of all frames that goes to the validation file (0 < F < 1)",
    )
    split.add_argument(
        "--by", choices=("frames", "systems"), default="frames",
        help="frames: draw frames at random from every system, about FRACTION "
        "of all frames in total; systems: draw whole systems until the "
        "validation file holds about FRACTION of all frames (not of the "
        "systems)",
    )
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("-o", "--output", required=True, metavar="PREFIX")
    split.add_argument("--overwrite", action="store_true")
    split.set_defaults(func=_split)

    merge = sub.add_parser("merge", help="merge datasets into one file")
    merge.add_argument("inputs", nargs="+", metavar="FILE.h5")
    merge.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    merge.add_argument("--allow-mixed-theory", action="store_true",
                       help="merge systems of different level_of_theory")
    merge.add_argument("--overwrite", action="store_true")
    merge.set_defaults(func=_merge)

    export = sub.add_parser("export", help="write a dataset as extxyz or DeePMD npy")
    export.add_argument("file", metavar="FILE.h5")
    export.add_argument("--format", required=True, choices=("extxyz", "deepmd"))
    export.add_argument("-o", "--output", required=True, metavar="OUT")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(func=_export)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _convert(args) -> int:
    from deepmd_like.data.converters import ConvertOptions, convert

    options = ConvertOptions(
        format=args.format,
        ase_format=args.ase_format,
        energy_unit=args.energy_unit,
        length_unit=args.length_unit,
        force_unit=args.force_unit,
        stress_unit=args.stress_unit,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        virial_key=args.virial_key,
        type_map=(
            [name.strip() for name in args.type_map.split(",")]
            if args.type_map
            else None
        ),
        level_of_theory=args.level_of_theory,
        allow_unlabelled=args.allow_unlabelled,
    )
    records = convert(args.sources, args.output, options, overwrite=args.overwrite)
    frames = sum(record.n_frames for record in records)
    print(f"wrote {args.output}: {len(records)} systems, {frames} frames")
    return 0


def _info(args) -> int:
    from deepmd_like.data.summary import format_summary, summarise

    root, systems = summarise(args.file)
    print(format_summary(args.file, root, systems))
    return 0


def _check(args) -> int:
    from deepmd_like.data.checks import check_dataset

    report = check_dataset(args.file, args.min_distance, args.outlier_sigma)
    print(report.format())
    return 0 if report.ok else 2


def _split(args) -> int:
    from deepmd_like.data.transform import split_dataset

    train, valid, counts = split_dataset(
        args.file, args.validation, args.output, args.by, args.seed, args.overwrite
    )
    print(f"wrote {train} ({counts['train']} frames) and {valid} "
          f"({counts['valid']} frames)")
    return 0


def _merge(args) -> int:
    from deepmd_like.data.transform import merge_datasets

    plan = merge_datasets(args.inputs, args.output, args.allow_mixed_theory,
                          args.overwrite)
    print(f"wrote {args.output}: {len(plan)} systems")
    return 0


def _export(args) -> int:
    from deepmd_like.data.transform import export_dataset

    path = export_dataset(args.file, args.format, args.output, args.overwrite)
    print(f"wrote {path}")
    return 0
