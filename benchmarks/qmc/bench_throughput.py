"""Walker-steps per second of sampling plus local-energy evaluation.

    python benchmarks/qmc/bench_throughput.py [--device cpu|cuda] [--threads 1]
        [--walkers 256] [--repeats 3] [--drift] [--laplacians loop forward]
        [--systems H2 LiH] [--json OUT.json]

For H2 and LiH with the network sizes of ``wavefunctions/*/input.yaml``, it
times one evaluation step (``decorrelation`` Metropolis moves, then the local
energy of every walker) and one optimisation step (the same plus a SPRING
update), for both ways of computing the Laplacian. A walker-step is one
walker going through one such step. ``--drift`` uses Langevin moves (one
extra backward pass per move). Wall and CPU seconds are both reported.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import yaml  # noqa: E402

from deepmd_like.qmc.config import config_from_dict  # noqa: E402
from deepmd_like.qmc.hamiltonian import local_energy  # noqa: E402
from deepmd_like.qmc.run import _make_optimizer, molecule_from_config  # noqa: E402
from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions  # noqa: E402
from deepmd_like.qmc.sampler import MetropolisSampler  # noqa: E402
from deepmd_like.qmc.system import initial_walkers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _timed(function, repeats: int, device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds per call, after one warm-up call."""
    function()  # warm-up: first calls import and allocate
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / repeats
    return wall, (time.process_time() - cpu) / repeats


def bench(
    system: str,
    n_walkers: int,
    repeats: int,
    device: torch.device,
    drift: bool = False,
    laplacians: tuple[str, ...] = ("loop", "forward"),
) -> list:
    data = yaml.safe_load((ROOT / "wavefunctions" / system / "input.yaml").read_text())
    data["sampler"]["n_walkers"] = n_walkers
    data["pretrain"]["steps"] = 0
    config = config_from_dict(data)
    molecule = molecule_from_config(config)
    a = config.ansatz
    options = FermiNetOptions(a.n_determinants, a.hidden_one, a.hidden_two, a.n_layers)
    torch.manual_seed(0)
    wavefunction = FermiNet(
        molecule.positions_tensor(device=device),
        molecule.charges_tensor(device=device),
        molecule.n_up,
        molecule.n_down,
        options,
    ).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    sampler = MetropolisSampler(wavefunction, generator, drift=drift)
    electrons = initial_walkers(molecule, n_walkers, generator, device=device)
    state = sampler.init(electrons)
    state, _ = sampler.step(state, 50)
    optimizer = _make_optimizer(config, wavefunction)
    moves = config.sampler.decorrelation
    rows = []
    for method in laplacians:

        def evaluate():
            new, _ = sampler.step(state, moves, adapt=False)
            return local_energy(wavefunction, new.electrons, method)

        def optimise():
            energies = evaluate()
            optimizer.step(state.electrons, energies)

        t_eval, cpu_eval = _timed(evaluate, repeats, device)
        t_opt, _ = _timed(optimise, repeats, device)
        rows.append(
            {
                "system": system,
                "laplacian": method,
                "drift": drift,
                "n_walkers": n_walkers,
                "moves_per_step": moves,
                "evaluate_step_s": t_eval,
                "walker_steps_per_s": n_walkers / t_eval,
                "walker_steps_per_cpu_s": n_walkers / cpu_eval,
                "optimise_step_s": t_opt,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--walkers", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", nargs="+", default=["H2", "LiH"])
    parser.add_argument("--drift", action="store_true", help="Langevin moves")
    parser.add_argument(
        "--laplacians", nargs="+", default=["loop", "forward"],
        choices=["loop", "forward"],
    )
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    device = torch.device(args.device)
    rows = []
    for system in args.systems:
        rows += bench(
            system, args.walkers, args.repeats, device, args.drift,
            tuple(args.laplacians),
        )
    print(f"device {device}, {args.threads} thread(s), float64")
    print(
        "system  laplacian  drift  walkers  eval step (s)  walker-steps/s  "
        "per CPU-s  opt step (s)"
    )
    for r in rows:
        print(
            f"{r['system']:6}  {r['laplacian']:9}  {str(r['drift']):5}  "
            f"{r['n_walkers']:7}  {r['evaluate_step_s']:13.3f}  "
            f"{r['walker_steps_per_s']:14.0f}  {r['walker_steps_per_cpu_s']:9.0f}  "
            f"{r['optimise_step_s']:12.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
