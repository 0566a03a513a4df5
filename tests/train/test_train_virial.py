"""Training with virial labels: periodic EMT copper, virial W = -V sigma."""

import json
import math

import numpy as np

from deepmd_like.cli import main
from deepmd_like.train.lcurve import read_lcurve


def _copper_set(path, n_frames=8, seed=0):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from deepmd_like.data import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter(path) as writer:
        for name, cubic in (("fcc1", False), ("fcc4", True)):
            base = bulk("Cu", "fcc", a=3.6, cubic=cubic)
            pos, cells, energies, forces, virials = [], [], [], [], []
            for _ in range(n_frames):
                atoms = base.copy()
                strain = np.eye(3) + rng.normal(scale=0.01, size=(3, 3))
                atoms.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
                atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
                atoms.calc = EMT()
                pos.append(atoms.positions.copy())
                cells.append(atoms.cell[:].copy())
                energies.append(atoms.get_potential_energy())
                forces.append(atoms.get_forces())
                stress = atoms.get_stress(voigt=False)
                virials.append(-atoms.get_volume() * stress)
            writer.add_system(
                name,
                base.numbers,
                np.array(pos),
                energy=np.array(energies),
                forces=np.array(forces),
                cell=np.array(cells),
                pbc=(True, True, True),
                virial=np.array(virials),
            )
    return path


def test_virial_loss_trains_and_matches_dpl_test(tmp_path):
    data_path = _copper_set(tmp_path / "cu.h5")
    data = {
        "model": {
            "type_map": ["Cu"],
            "descriptor": {
                "type": "se_e2_a",
                "rcut": 4.0,
                "rcut_smth": 0.5,
                "sel": [48],
                "neuron": [4, 8],
                "axis_neuron": 2,
            },
            "fitting_net": {"neuron": [8, 8]},
            "data_stat_nbatch": 2,
        },
        "learning_rate": {"start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 5},
        "loss": {"start_pref_v": 1.0, "limit_pref_v": 1.0},
        "training": {
            "training_data": {"systems": [f"{data_path}:fcc1"], "batch_size": 2},
            "validation_data": {"systems": [f"{data_path}:fcc4"], "batch_size": 8},
            "numb_steps": 4,
            "disp_freq": 4,
            "save_freq": 4,
            "seed": 1,
        },
    }
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    run = tmp_path / "run"
    assert main(["train", str(path), "-o", str(run), "--no-progress"]) == 0
    last = read_lcurve(run / "lcurve.csv")[-1]
    assert math.isfinite(last["train_virial_rmse_per_atom_eV"])
    out = tmp_path / "m.json"
    args = ["test", "-m", str(run / "checkpoint.pt"), "-s", f"{data_path}:fcc4"]
    assert main(args + ["--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["overall"]
    assert math.isclose(
        metrics["virial_rmse_per_atom"],
        last["valid_virial_rmse_per_atom_eV"],
        rel_tol=1e-5,
    )
    assert math.isclose(metrics["virial_rmse"], 4 * metrics["virial_rmse_per_atom"])
