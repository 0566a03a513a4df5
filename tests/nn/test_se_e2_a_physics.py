"""DeepPot-SE physics: forces and virials are derivatives of the energy, the
energy has the symmetries of physics, and periodic images behave."""

import numpy as np
import pytest
import torch

from deepmd_like.errors import UserError
from deepmd_like.nn.evaluate import evaluate
from deepmd_like.nn.model import EnergyModel
from deepmd_like.nn.testing import (
    finite_difference_forces,
    finite_difference_virial,
    make_batch,
    random_rotation,
    relative_difference,
)

TRICLINIC = np.array([[5.2, 0.0, 0.0], [0.9, 4.8, 0.0], [-0.6, 0.7, 5.0]])


def small_model(type_one_side=True, type_embedding=False, sel=(24, 40), seed=3,
                rcut=4.0, rcut_smth=1.0, type_map=("O", "H")):
    config = {
        "type_map": list(type_map),
        "descriptor": {
            "sel": list(sel), "rcut": rcut, "rcut_smth": rcut_smth,
            "neuron": [4, 8], "axis_neuron": 3, "type_one_side": type_one_side,
            "seed": seed,
        },
        "fitting_net": {"neuron": [10, 10], "seed": seed + 1},
    }
    if type_embedding:
        config["type_embedding"] = {"neuron": [3]}
    model = EnergyModel(config)
    return model


def water_like(seed, n_atoms=9, cell=TRICLINIC, pbc=(True, True, True)):
    rng = np.random.default_rng(seed)
    # Random fractional positions, kept apart so the structure is sensible.
    while True:
        frac = rng.uniform(-0.3, 1.3, (n_atoms, 3))
        pos = frac @ cell
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        if (d + np.eye(n_atoms) * 10).min() > 0.9:
            break
    numbers = [8 if k % 3 == 0 else 1 for k in range(n_atoms)]
    return {"positions": pos, "numbers": numbers, "cell": cell, "pbc": pbc}


def trained_like(model, structures):
    """Give the model data statistics so its inputs are O(1), as after training."""
    model.compute_input_stats([make_batch(structures)])
    with torch.no_grad():
        model.set_energy_shift(np.array([-5.0, -1.5][: len(model.type_map)]))
        # A fresh net's output is tiny; scale it to trained-model forces.
        for net in model.core.fitting.nets:
            net.layers[-1].weight.mul_(100.0)
    return model


@pytest.mark.parametrize("variant", ["one_side", "pairs", "type_embedding"])
def test_forces_and_virial_are_energy_derivatives(variant):
    model = small_model(
        type_one_side=variant != "pairs", type_embedding=variant == "type_embedding"
    )
    structure = water_like(0)
    trained_like(model, [structure])
    batch = make_batch([structure])
    out = evaluate(model, batch, virial=True)

    forces = finite_difference_forces(model, batch, step=1e-4)
    assert float(out["forces"].abs().max()) > 1e-2  # a non-trivial test
    assert float((out["forces"] - forces).abs().max()) < 1e-6

    virial = finite_difference_virial(model, batch, step=1e-5)
    assert float(out["virial"].abs().max()) > 1e-2
    assert float((out["virial"] - virial).abs().max()) < 1e-6
    # A rotation-invariant energy has a symmetric virial.
    assert torch.allclose(out["virial"], out["virial"].transpose(1, 2), atol=1e-10)


def test_energy_invariances():
    model = small_model()
    structure = water_like(1)
    trained_like(model, [structure])
    reference = evaluate(model, make_batch([structure]), virial=True)
    energy = reference["energy"]

    rotation = random_rotation(7).numpy()
    rotated = dict(structure, positions=structure["positions"] @ rotation.T,
                   cell=structure["cell"] @ rotation.T)
    out = evaluate(model, make_batch([rotated]))
    assert relative_difference(out["energy"], energy) < 1e-10
    # Forces rotate with the structure.
    expected = reference["forces"] @ torch.from_numpy(rotation).T
    assert float((out["forces"] - expected).abs().max()) < 1e-10

    translated = dict(structure, positions=structure["positions"] + [3.3, -7.1, 0.4])
    assert relative_difference(model(make_batch([translated]))["energy"],
                               energy) < 1e-10

    # Swap two oxygens and two hydrogens.
    order = np.arange(len(structure["numbers"]))
    order[[0, 3]] = order[[3, 0]]
    order[[1, 5]] = order[[5, 1]]
    permuted = dict(structure, positions=structure["positions"][order],
                    numbers=np.asarray(structure["numbers"])[order])
    out = evaluate(model, make_batch([permuted]))
    assert relative_difference(out["energy"], energy) < 1e-10
    assert float((out["forces"] - reference["forces"][order]).abs().max()) < 1e-10

    cell = structure["cell"]
    fractional = structure["positions"] @ np.linalg.inv(cell)
    wrapped = dict(structure, positions=(fractional % 1.0) @ cell)
    assert relative_difference(model(make_batch([wrapped]))["energy"], energy) < 1e-10

    moved = structure["positions"].copy()
    moved[2] += 2 * cell[0] - cell[2]
    by_lattice = dict(structure, positions=moved)
    assert relative_difference(model(make_batch([by_lattice]))["energy"],
                               energy) < 1e-10


def test_pair_along_an_axis_has_finite_gradients():
    model = small_model()
    structure = {"positions": [[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 0.0, 1.3]],
                 "numbers": [8, 1, 1]}
    trained_like(model, [water_like(2)])
    batch = make_batch([structure])
    out = evaluate(model, batch, virial=True)
    assert torch.isfinite(out["forces"]).all() and torch.isfinite(out["virial"]).all()
    assert float((out["forces"] - finite_difference_forces(model, batch)).abs().max()) \
        < 1e-6
    # Newton's third law for an isolated molecule.
    assert float(out["forces"].sum(0).abs().max()) < 1e-12


def _fcc(a, n):
    primitive = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    grid = np.array([(i, j, k) for i in range(n) for j in range(n) for k in range(n)])
    positions = grid @ primitive
    return {"positions": positions, "numbers": [29] * len(positions),
            "cell": n * primitive, "pbc": (True, True, True)}


def test_one_atom_cell_equals_supercell():
    # fcc Cu, a = 3.6 Å: the primitive cell's edges (2.55 Å) are far below
    # the 4.5 Å cutoff, so each atom sees many images of itself.
    model = small_model(type_map=("Cu",), sel=(60,), rcut=4.5, rcut_smth=2.0)
    single, supercell = _fcc(3.6, 1), _fcc(3.6, 3)
    trained_like(model, [_rattled(supercell)])
    out1 = evaluate(model, make_batch([single]), virial=True)
    out27 = evaluate(model, make_batch([supercell]), virial=True)
    assert relative_difference(out27["energy"] / 27, out1["energy"]) < 1e-12
    volume1 = abs(np.linalg.det(single["cell"]))
    stress1 = out1["virial"] / volume1
    stress27 = out27["virial"] / (27 * volume1)
    assert float(stress1.abs().max()) > 1e-4
    assert float((stress27 - stress1).abs().max()) < 1e-12 * float(stress1.abs().max())
    # Every atom of a perfect crystal is at a centre of symmetry: no force.
    assert float(out27["forces"].abs().max()) < 1e-12


def _rattled(structure, seed=0):
    rng = np.random.default_rng(seed)
    return dict(structure, positions=structure["positions"]
                + rng.normal(0, 0.1, structure["positions"].shape))


def test_isolated_atoms_have_their_own_energy_and_no_force():
    model = small_model()
    trained_like(model, [water_like(3)])
    far = {"positions": [[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [0.0, 40.0, 0.0]],
           "numbers": [8, 1, 1]}
    lone_o = {"positions": [[1.0, 2.0, 3.0]], "numbers": [8]}
    lone_h = {"positions": [[0.0, 0.0, 0.0]], "numbers": [1]}
    out = evaluate(model, make_batch([far, lone_o, lone_h]), virial=True)
    assert torch.isfinite(out["energy"]).all()
    assert torch.equal(out["forces"], torch.zeros_like(out["forces"]))
    assert torch.equal(out["virial"], torch.zeros_like(out["virial"]))
    e_o, e_h = out["energy"][1], out["energy"][2]
    assert abs(float(out["energy"][0] - (e_o + 2 * e_h))) < 1e-12 * abs(float(e_o))
    # Empty environments are all padding: the energy is the fitting net at
    # the padding descriptor plus the element's shift (not the shift alone).
    assert abs(float(e_o) - (-5.0)) > 1e-6


def test_element_outside_type_map_is_named():
    model = small_model()
    batch = make_batch([{"positions": [[0, 0, 0], [1.0, 0, 0]], "numbers": [8, 29]}])
    with pytest.raises(UserError, match="Cu"):
        model(batch)


def test_batch_of_two_sizes_equals_separate_structures():
    model = small_model()
    small = water_like(4, n_atoms=3, cell=TRICLINIC * 0.9)
    large = dict(water_like(5, n_atoms=5), pbc=(True, False, True))
    trained_like(model, [small, large])
    together = evaluate(model, make_batch([small, large]), virial=True)
    first = evaluate(model, make_batch([small]), virial=True)
    second = evaluate(model, make_batch([large]), virial=True)
    assert relative_difference(together["energy"],
                               torch.cat([first["energy"], second["energy"]])) < 1e-12
    forces = torch.cat([first["forces"], second["forces"]])
    assert float((together["forces"] - forces).abs().max()) \
        < 1e-12 * float(forces.abs().max())
    virial = torch.cat([first["virial"], second["virial"]])
    assert float((together["virial"] - virial).abs().max()) \
        < 1e-12 * float(virial.abs().max())


def test_energy_is_smooth_at_the_cutoff():
    model = small_model()
    trained_like(model, [water_like(6)])
    rcut = model.cutoff

    def dimer(r):
        return {"positions": [[0.0, 0.0, 0.0], [r, 0.0, 0.0]], "numbers": [8, 1]}

    inside = evaluate(model, make_batch([dimer(rcut - 1e-7)]))
    outside = evaluate(model, make_batch([dimer(rcut + 1e-7)]))
    assert abs(float(inside["energy"] - outside["energy"])) < 1e-12
    assert float(inside["forces"].abs().max()) < 1e-12


def test_precomputed_neighbour_list_with_skin_gives_the_same_result():
    from deepmd_like.nn.neighbors import neighbor_list

    model = small_model()
    structure = water_like(7)
    trained_like(model, [structure])
    batch = make_batch([structure])
    pairs = neighbor_list(batch["positions"], batch["cell"], batch["pbc"],
                          batch["structure_index"], model.cutoff + 1.5)
    with_list = dict(batch, centers=pairs.centers, neighbors=pairs.neighbors,
                     shifts=pairs.shifts)
    # The same pairs in a shuffled order (not grouped by centre).
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
    shuffled = dict(batch, centers=pairs.centers[order],
                    neighbors=pairs.neighbors[order], shifts=pairs.shifts[order])
    a = evaluate(model, batch, virial=True)
    for other in (with_list, shuffled):
        b = evaluate(model, other, virial=True)
        for key in ("energy", "forces", "virial"):
            assert float((a[key] - b[key]).abs().max()) < 1e-12


def test_float32_model_agrees_with_float64():
    model = small_model()
    structure = water_like(8)
    trained_like(model, [structure])
    with torch.no_grad():
        model.set_energy_shift(np.array([-2041.1234567, -16.5]))
    batch = make_batch([structure])
    a = evaluate(model, batch)
    model32 = model.to(torch.float32)
    assert model32.core.fitting.energy_shift.dtype == torch.float64
    b = evaluate(model32, batch)
    assert b["energy"].dtype == torch.float64
    # float32 arithmetic, but the large shifts are added in float64.
    assert float((a["energy"] - b["energy"]).abs().max()) < 1e-4
    assert float((a["forces"] - b["forces"]).abs().max()) < 1e-4
