"""Cost of appending one frame to a 10,000-frame trajectory.

Usage (from the repository root)::

    python benchmarks/data/bench_append.py [--atoms 192] [--appends 50]

Builds a 10,000-frame file, then times single-frame ``append_frames`` calls
(each one a crash-safe transaction), with and without ``fsync``, and reports
the file size so the cost can be compared with copying the file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from deepmd_like.data.writer import DatasetWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=192)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--appends", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.atoms
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traj.h5"
        with DatasetWriter(path, journal=False) as writer:
            writer.add_system(
                "md", np.full(n, 8), rng.normal(size=(args.frames, n, 3)),
                energy=rng.normal(size=args.frames),
                forces=rng.normal(size=(args.frames, n, 3)),
                cell=np.eye(3) * 20, pbc=(True, True, True),
            )
        results["file_mb"] = path.stat().st_size / 1e6
        for sync in (True, False):
            with DatasetWriter(path, sync=sync) as writer:
                start = time.perf_counter()
                for _ in range(args.appends):
                    writer.append_frames(
                        "md", rng.normal(size=(1, n, 3)), energy=[0.0],
                        forces=rng.normal(size=(1, n, 3)), cell=np.eye(3) * 20,
                    )
                seconds = time.perf_counter() - start
            results[f"append_ms_sync_{sync}"] = 1e3 * seconds / args.appends
        start = time.perf_counter()
        (Path(tmp) / "copy.h5").write_bytes(path.read_bytes())
        results["copy_file_ms"] = 1e3 * (time.perf_counter() - start)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
