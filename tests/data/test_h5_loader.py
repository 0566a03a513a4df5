"""Frames through a PyTorch DataLoader: workers, batches, collation."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from deepmd_like.data import Dataset, collate_structures


def _batches(dataset, workers, seed=1234):
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=7, shuffle=True, generator=generator,
        collate_fn=collate_structures, num_workers=workers,
    )
    return list(loader)


def test_four_workers_equal_zero_workers(repo_root):
    dataset = Dataset(repo_root / "datasets" / "water.h5")
    serial = _batches(dataset, 0)
    parallel = _batches(dataset, 4)
    assert len(serial) == len(parallel) == 58  # ceil(400 / 7)
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    seen = torch.cat([b["system_index"] * 1000 + b["frame_index"] for b in serial])
    assert len(set(seen.tolist())) == 400  # every frame exactly once


def test_collate_layout(repo_root, tmp_path):
    from deepmd_like.data import DatasetWriter

    path = tmp_path / "mixed.h5"
    with DatasetWriter(path) as writer:
        writer.add_system("h2", [1, 1], np.array([[[0, 0, 0], [0, 0, 0.74]]]),
                          energy=[-31.7], forces=np.zeros((1, 2, 3)))
        writer.add_system("co2", [6, 8, 8], np.arange(18.0).reshape(2, 3, 3),
                          energy=[-1.0, -2.0], cell=np.eye(3) * 10,
                          pbc=(True, True, False),
                          virial=np.arange(18.0).reshape(2, 3, 3))
    dataset = Dataset(path)
    batch = collate_structures([dataset[i] for i in range(3)])
    assert batch["positions"].shape == (8, 3)
    assert batch["structure_index"].tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert batch["n_atoms"].tolist() == [2, 3, 3]
    assert batch["atomic_numbers"].tolist() == [1, 1, 6, 8, 8, 6, 8, 8]
    assert batch["cell"].shape == (3, 3, 3) and batch["cell"][0].abs().sum() == 0
    slab = [True, True, False]
    assert batch["pbc"].tolist() == [[False] * 3, slab, slab]
    assert batch["has_forces"].tolist() == [True, False, False]
    assert batch["has_virial"].tolist() == [False, True, True]
    expected = torch.arange(9.0, 18.0, dtype=torch.float64).reshape(3, 3)
    assert torch.equal(batch["virial"][2], expected)
    assert batch["energy"].dtype == torch.float64
    # Selecting systems with the FILE:NAME form, and pickling without a handle.
    only = Dataset(f"{path}:co2")
    assert len(only) == 2 and only.system_names == ["co2"]
    only[0]
    clone = pickle.loads(pickle.dumps(only))
    assert torch.equal(clone[1]["positions"], only[1]["positions"])
