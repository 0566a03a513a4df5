"""Convert the DeePMD water set and read every frame back: frames per second.

Usage (from the repository root)::

    python benchmarks/data/bench_water.py [SOURCE] [--repeats 3]

SOURCE defaults to ../shared/data/water_deepmd (400 frames of 192 atoms).
Reports the conversion time (library call, DeePMD npy -> HDF5), the time to
serve one frame by ``dataset[i]`` in random order, and DataLoader throughput
(with collate_structures) for several batch sizes and worker counts. One
torch thread, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepmd_like.data import Dataset, collate_structures  # noqa: E402
from deepmd_like.data.converters import convert  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def best(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path,
                        default=REPO.parent / "shared" / "data" / "water_deepmd")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": f"{platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "water.h5"

        def run_convert():
            convert([args.source], out, overwrite=True)

        seconds = best(run_convert, args.repeats)
        dataset = Dataset(out)
        n = len(dataset)
        results["convert_s"] = seconds
        results["convert_frames_per_s"] = n / seconds

        order = np.random.default_rng(0).permutation(n)
        [dataset[int(i)] for i in order]  # warm the file cache
        seconds = best(lambda: [dataset[int(i)] for i in order], args.repeats)
        results["getitem_us_per_frame"] = 1e6 * seconds / n
        cpu = time.process_time()
        [dataset[int(i)] for i in order]
        results["getitem_cpu_us_per_frame"] = 1e6 * (time.process_time() - cpu) / n

        for batch_size, workers, shuffle in [(1, 0, True), (32, 0, True),
                                             (32, 0, False), (32, 2, True)]:
            def run_loader():
                generator = torch.Generator().manual_seed(0)
                loader = torch.utils.data.DataLoader(
                    dataset, batch_size=batch_size, shuffle=shuffle,
                    generator=generator, collate_fn=collate_structures,
                    num_workers=workers,
                )
                count = 0
                for batch in loader:
                    count += batch["n_atoms"].shape[0]
                assert count == n

            seconds = best(run_loader, args.repeats)
            order_name = "shuffled" if shuffle else "ordered"
            key = f"loader_b{batch_size}_w{workers}_{order_name}"
            results[key + "_frames_per_s"] = n / seconds
    for key, value in results.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
