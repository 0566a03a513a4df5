"""Read a 1,000,000-frame dataset through with bounded memory.

Usage (from the repository root)::

    python benchmarks/data/bench_large.py [--frames 1000000] [--atoms 20]
                                          [--workdir /tmp] [--keep]

Writes a synthetic file (random positions in a 10 Å box, random forces and
energies; 20 atoms per frame: 1e6 x 20 x 3 x 8 B = 480 MB of positions and
as much of forces, uncompressed) with :class:`DatasetWriter`, then, in a
fresh process, measures the resident memory after the imports and the open
``Dataset`` (the baseline) and the peak while every frame is served through
a ``DataLoader`` (batches of 1000 in file order with ``collate_structures``),
plus a shuffled pass over 100,000 frames. Prints JSON with frames/s and the
peak RSS growth over the baseline (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def rss_mb() -> tuple[float, float]:
    """Current and peak resident set size of this process, MB."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values["VmRSS"], values["VmHWM"]


def reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def generate(path: Path, n_frames: int, n_atoms: int, block: int = 20_000) -> float:
    import numpy as np

    from deepmd_like.data.writer import DatasetWriter

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    numbers = rng.choice([1, 6, 7, 8], size=n_atoms)
    with DatasetWriter(path, overwrite=True, journal=False) as writer:
        for first in range(0, n_frames, block):
            count = min(block, n_frames - first)
            arrays = dict(
                positions=rng.uniform(0, 10, (count, n_atoms, 3)),
                energy=rng.normal(-100.0, 1.0, count),
                forces=rng.normal(0, 1, (count, n_atoms, 3)),
            )
            if first == 0:
                writer.add_system("synthetic", numbers, **arrays)
            else:
                writer.append_frames("synthetic", **arrays)
    return time.perf_counter() - start


def read(path: Path) -> dict:
    import numpy as np
    import torch

    from deepmd_like.data import Dataset, collate_structures

    torch.set_num_threads(1)
    dataset = Dataset(path)
    dataset[0]  # open this process's handle and load the small arrays
    baseline, _ = rss_mb()
    reset_peak()
    results = {"frames": len(dataset), "baseline_rss_mb": baseline}

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=1000, shuffle=False, collate_fn=collate_structures
    )
    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    checksum = 0.0
    for batch in loader:
        count += batch["n_atoms"].shape[0]
        checksum += float(batch["energy"].sum())
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert count == len(dataset)
    current, peak = rss_mb()
    results.update(
        ordered_seconds=seconds,
        ordered_frames_per_s=count / seconds,
        ordered_cpu_us_per_frame=1e6 * cpu / count,
        ordered_peak_rss_growth_mb=peak - baseline,
        energy_sum=checksum,
    )

    reset_peak()
    order = np.random.default_rng(1).permutation(len(dataset))[:100_000]
    sampler = torch.utils.data.BatchSampler(
        order.tolist(), batch_size=32, drop_last=False
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_structures
    )
    start, cpu = time.perf_counter(), time.process_time()
    count = sum(batch["n_atoms"].shape[0] for batch in loader)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    _, peak = rss_mb()
    results.update(
        shuffled_frames=count,
        shuffled_frames_per_s=count / seconds,
        shuffled_cpu_us_per_frame=1e6 * cpu / count,
        shuffled_peak_rss_growth_mb=peak - baseline,
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--atoms", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the file")
    parser.add_argument("--read-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.read_only:
        print(json.dumps(read(args.read_only)))
        return

    path = args.workdir / f"synthetic_{args.frames}x{args.atoms}.h5"
    try:
        seconds = generate(path, args.frames, args.atoms)
        results = {
            "write_seconds": seconds,
            "write_frames_per_s": args.frames / seconds,
            "load_average_at_start": os.getloadavg()[0],
            "file_mb": path.stat().st_size / 1e6,
            "uncompressed_positions_forces_mb": args.frames * args.atoms * 48 / 1e6,
        }
        # Read in a fresh process so that the baseline is not inflated by
        # whatever writing left behind.
        output = subprocess.run(
            [sys.executable, __file__, "--read-only", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout
        results.update(json.loads(output.strip().splitlines()[-1]))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
