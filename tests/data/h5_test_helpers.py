"""Small synthetic inputs for the data-layer tests (imported by the tests).

Not a conftest.py: several test folders have helpers, and a module named
``conftest`` imported by tests would clash between folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_deepmd_system(
    folder: Path,
    types,
    type_map,
    coord,
    energy=None,
    force=None,
    box=None,
    virial=None,
    sets=1,
):
    """Write a DeePMD npy system; arrays are split evenly over ``sets``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "type.raw", np.asarray(types), fmt="%d")
    (folder / "type_map.raw").write_text(" ".join(type_map) + "\n")
    if box is None:
        (folder / "nopbc").touch()
    n = coord.shape[0]
    edges = np.linspace(0, n, sets + 1).astype(int)
    for number in range(sets):
        sub = folder / f"set.{number:03d}"
        sub.mkdir()
        part = slice(edges[number], edges[number + 1])
        np.save(sub / "coord.npy", coord[part])
        for name, value in (("energy", energy), ("force", force), ("box", box),
                            ("virial", virial)):
            if value is not None:
                np.save(sub / f"{name}.npy", value[part])
    return folder


@pytest.fixture
def random_system():
    """A periodic 6-atom system (2 O, 4 H) with 10 labelled frames, float64."""
    rng = np.random.default_rng(7)
    n_frames, n_atoms = 10, 6
    return {
        "types": np.array([0, 1, 1, 0, 1, 1]),
        "type_map": ["O", "H"],
        "numbers": np.array([8, 1, 1, 8, 1, 1]),
        "coord": rng.uniform(0, 5, (n_frames, n_atoms * 3)),
        "energy": rng.normal(-100, 0.5, n_frames),
        "force": rng.normal(0, 1, (n_frames, n_atoms * 3)),
        "box": np.tile((np.eye(3) * 5.0).ravel(), (n_frames, 1))
        + rng.normal(0, 0.01, (n_frames, 9)),
        "virial": rng.normal(0, 2, (n_frames, 9)),
    }
