"""Small potentials and structures shared by the calculator and deck tests."""

import numpy as np
import torch
from ase import Atoms

from deepmd_like.nn.model import EnergyModel


def small_model(seed: int = 1) -> EnergyModel:
    """A random, untrained DeepPot-SE model for O and H (smooth, cheap)."""
    torch.manual_seed(seed)
    model = EnergyModel(
        {
            "type_map": ["O", "H"],
            "descriptor": {
                "rcut": 4.0,
                "rcut_smth": 0.5,
                "sel": [16, 32],
                "neuron": [4, 8],
                "axis_neuron": 2,
                "seed": seed,
            },
            "fitting_net": {"neuron": [8, 8], "seed": seed + 100},
        }
    )
    model = model.double()
    # Normalise the environment with statistics of the test structures, as
    # training would, so energies and forces have realistic magnitudes.
    model.compute_input_stats([batch_of(water_cluster())])
    return model


def batch_of(atoms: Atoms) -> dict:
    n = len(atoms)
    return {
        "positions": torch.tensor(atoms.positions),
        "atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.long),
        "structure_index": torch.zeros(n, dtype=torch.long),
        "cell": torch.tensor(atoms.cell.array)[None],
        "pbc": torch.tensor(atoms.pbc)[None],
        "n_atoms": torch.tensor([n]),
    }


def water_cluster(pbc=(True, True, True), seed: int = 0) -> Atoms:
    """Eight water-like molecules in a small triclinic box."""
    rng = np.random.default_rng(seed)
    cell = np.array([[6.5, 0.0, 0.0], [1.2, 6.0, 0.0], [-0.8, 0.7, 6.8]])
    centres = (np.stack(np.meshgrid([0.25, 0.75], [0.25, 0.75], [0.25, 0.75]))
               .reshape(3, -1).T) @ cell
    positions, numbers = [], []
    for centre in centres:
        positions += [centre, centre + [0.96, 0, 0], centre + [-0.24, 0.93, 0]]
        numbers += [8, 1, 1]
    positions = np.array(positions) + rng.normal(0, 0.05, (len(numbers), 3))
    return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
