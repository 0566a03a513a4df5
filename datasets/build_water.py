"""Rebuild datasets/water.h5 from the DeePMD-kit water example.

Usage (from the repository root)::

    python datasets/build_water.py [SOURCE] [-o datasets/water.h5] [--overwrite]

SOURCE defaults to ../shared/data/water_deepmd beside the repository: the
folder examples/water/data/ of github.com/deepmodeling/deepmd-kit (commit
bc902daf747d93c5d7314338d287fd2dd0a7e32c), four DeePMD npy systems
data_0..data_3. The same result comes from
``dpl data convert SOURCE -o datasets/water.h5``; this script only adds the
provenance attributes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deepmd_like.data.deepmd_format import read_deepmd
from deepmd_like.data.records import write_records

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "water_deepmd"
UPSTREAM = (
    "github.com/deepmodeling/deepmd-kit examples/water/data/{name} "
    "(commit bc902daf747d93c5d7314338d287fd2dd0a7e32c, LGPL-3.0)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument(
        "-o", "--output", type=Path, default=REPO / "datasets" / "water.h5"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    records = read_deepmd([args.source])
    names = [record.name for record in records]
    if names != ["data_0", "data_1", "data_2", "data_3"]:
        parser.error(f"{args.source}: expected systems data_0..data_3, found {names}")
    for record in records:
        record.attrs.update(
            source=UPSTREAM.format(name=record.name),
            level_of_theory="unknown (not stated by the source)",
            description="liquid water, 64 H2O in a periodic cubic box of 12.4447 Å",
        )
    write_records(records, args.output, overwrite=args.overwrite)
    frames = sum(record.n_frames for record in records)
    logging.info("wrote %s: %d systems, %d frames", args.output, len(records), frames)
    return 0


if __name__ == "__main__":
    from deepmd_like.errors import UserError

    try:
        sys.exit(main())
    except UserError as err:
        print(f"build_water.py: error: {err}", file=sys.stderr)
        sys.exit(2)
