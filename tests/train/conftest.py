"""Small labelled datasets for the training tests.

Water monomers (3 atoms) and dimers (6 atoms) in open boundary conditions,
labelled with ASE's EMT potential plus large per-element offsets, so that
the totals look like ab initio energies (hundreds of eV per atom).
"""

from __future__ import annotations

import numpy as np
import pytest

# Offsets per element (eV), of the size of pseudopotential DFT totals.
OFFSETS = {8: -432.0, 1: -13.5}


def _water(rng: np.random.Generator, n_molecules: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    numbers, positions = [], []
    for m in range(n_molecules):
        shift = np.array([2.9 * m, 0.0, 0.0])
        positions.append(base + shift + rng.normal(scale=0.03, size=(3, 3)))
        numbers += [8, 1, 1]
    return np.array(numbers), np.concatenate(positions)


def label(numbers: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """EMT energy (plus offsets) and forces of one open structure."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = EMT()
    energy = atoms.get_potential_energy() + sum(OFFSETS[int(z)] for z in numbers)
    return float(energy), atoms.get_forces()


def write_water_set(path, n_frames=(12, 12), seed=0, names=("monomer", "dimer")):
    """A dataset with one system per entry of ``n_frames`` (1, 2, ... molecules)."""
    from deepmd_like.data import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter(path) as writer:
        for k, (name, n) in enumerate(zip(names, n_frames)):
            frames = [_water(rng, k + 1) for _ in range(n)]
            numbers = frames[0][0]
            positions = np.stack([p for _, p in frames])
            labels = [label(numbers, p) for p in positions]
            writer.add_system(
                name,
                numbers,
                positions,
                energy=np.array([e for e, _ in labels]),
                forces=np.stack([f for _, f in labels]),
            )
    return path


@pytest.fixture(scope="session")
def water_set(tmp_path_factory):
    """``monomer`` (3 atoms) and ``dimer`` (6 atoms) systems, 12 frames each."""
    return write_water_set(tmp_path_factory.mktemp("data") / "water.h5")


def tiny_input(train_ref: str, valid_ref: str | None = None, **training) -> dict:
    """An input file (as a dict) with a very small se_e2_a model."""
    data = {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {
                "type": "se_e2_a",
                "rcut": 4.0,
                "rcut_smth": 0.5,
                "sel": [4, 8],
                "neuron": [4, 8],
                "axis_neuron": 2,
            },
            "fitting_net": {"neuron": [8, 8], "resnet_dt": True},
            "data_stat_nbatch": 2,
        },
        "learning_rate": {"start_lr": 3e-3, "stop_lr": 1e-4, "decay_steps": 10},
        "loss": {},
        "training": {
            "training_data": {"systems": [train_ref], "batch_size": 2},
            "numb_steps": 20,
            "seed": 3,
            "disp_freq": 5,
            "save_freq": 10,
        },
    }
    if valid_ref is not None:
        data["training"]["validation_data"] = {"systems": [valid_ref], "batch_size": 4}
    data["training"].update(training)
    return data
