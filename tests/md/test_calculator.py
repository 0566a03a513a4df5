"""The ASE calculator: derivatives by finite differences, caching, errors."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.langevin import Langevin
from ase import units
from ase.md.verlet import VelocityVerlet
from md_calculator_helpers import small_model, water_cluster

from deepmd_like.calculator import DPLCalculator
from deepmd_like.errors import UserError
from deepmd_like.md import LennardJones


def argon(n: int = 2, a: float = 5.4, jitter: float = 0.1) -> Atoms:
    from ase.build import bulk

    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(n)
    rng = np.random.default_rng(3)
    atoms.positions += rng.normal(0, jitter, atoms.positions.shape)
    return atoms


def lj(**kw) -> LennardJones:
    defaults = dict(epsilon=0.0104, sigma=3.4, cutoff=6.0, smoothing="force_shift")
    defaults.update(kw)
    return LennardJones(**defaults)


def numeric_forces(atoms: Atoms, h: float = 1e-4) -> np.ndarray:
    out = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            shifted = []
            for sign in (+1, -1):
                trial = atoms.copy()
                trial.calc = atoms.calc
                trial.positions[i, k] += sign * h
                shifted.append(trial.get_potential_energy())
            out[i, k] = -(shifted[0] - shifted[1]) / (2 * h)
    return out


def numeric_stress(atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """(1/V) dE/d(eps) by central differences of a symmetric strain."""
    volume = atoms.get_volume()
    cell0 = atoms.cell.array.copy()
    pos0 = atoms.positions.copy()
    out = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (+1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += 0.5 * sign * h
                eps[j, i] += 0.5 * sign * h
                trial = atoms.copy()
                trial.calc = atoms.calc
                trial.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=False)
                trial.positions = pos0 @ (np.eye(3) + eps)
                energies.append(trial.get_potential_energy())
            out[i, j] = (energies[0] - energies[1]) / (2 * h) / volume
    return out


@pytest.mark.parametrize("which", ["lj", "deeppot"])
def test_forces_are_minus_energy_gradient(which):
    if which == "lj":
        atoms = argon()
        atoms.calc = DPLCalculator(lj())
    else:
        atoms = water_cluster()
        atoms.calc = DPLCalculator(small_model())
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 1e-3  # not trivially zero
    scale = max(1, np.abs(forces).max())
    np.testing.assert_allclose(forces, numeric_forces(atoms), atol=1e-7 * scale)
    energies = atoms.get_potential_energies()
    assert energies.sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    assert atoms.calc.get_property("free_energy") == atoms.get_potential_energy()


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False)])
def test_stress_is_strain_derivative_over_real_volume(pbc):
    atoms = water_cluster(pbc=pbc)
    atoms.calc = DPLCalculator(small_model())
    stress = atoms.get_stress(voigt=False)
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(stress, numeric_stress(atoms), atol=1e-9, rtol=1e-6)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_lj_stress_triclinic():
    atoms = argon(jitter=0.2)
    atoms.set_cell(atoms.cell.array + [[0, 0, 0], [1.0, 0, 0], [0.5, -0.7, 0]],
                   scale_atoms=True)
    atoms.calc = DPLCalculator(lj())
    np.testing.assert_allclose(
        atoms.get_stress(voigt=False), numeric_stress(atoms), atol=1e-10, rtol=1e-6
    )


def test_no_stress_without_periodicity():
    atoms = water_cluster(pbc=(False, False, False))
    atoms.calc = DPLCalculator(small_model())
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_recomputes_after_numbers_cell_pbc_positions_change():
    model = small_model()
    atoms = water_cluster()
    atoms.calc = DPLCalculator(model)

    def fresh(a):
        b = a.copy()
        b.calc = DPLCalculator(model)
        return b.get_potential_energy(), b.get_forces()

    e0 = atoms.get_potential_energy()
    assert atoms.get_potential_energy() == e0  # cached
    numbers = atoms.numbers.copy()
    numbers[[0, 1]] = numbers[[1, 0]]
    atoms.numbers = numbers
    e1, f1 = fresh(atoms)
    assert e1 != e0
    assert atoms.get_potential_energy() == pytest.approx(e1, abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f1, atol=1e-12)
    atoms.set_cell(atoms.cell.array * 0.97, scale_atoms=False)
    e2, _ = fresh(atoms)
    assert e2 != e1
    assert atoms.get_potential_energy() == pytest.approx(e2, abs=1e-12)
    atoms.pbc = (True, False, True)
    e3, _ = fresh(atoms)
    assert e3 != e2
    assert atoms.get_potential_energy() == pytest.approx(e3, abs=1e-12)
    atoms.positions[3] += 0.1
    e4, _ = fresh(atoms)
    assert atoms.get_potential_energy() == pytest.approx(e4, abs=1e-12)


def test_unknown_element_is_named():
    atoms = water_cluster()
    atoms.numbers[4] = 7
    atoms.calc = DPLCalculator(small_model())
    with pytest.raises(UserError, match=r"\bN\b"):
        atoms.get_potential_energy()
    krypton = argon()
    krypton.numbers[:] = 36
    krypton.calc = DPLCalculator(lj(type_map=["Ar"]))
    with pytest.raises(UserError, match="Kr"):
        krypton.get_forces()


def test_float32_option_and_device():
    atoms = water_cluster()
    ref = atoms.copy()
    ref.calc = DPLCalculator(small_model(), device="cpu")
    atoms.calc = DPLCalculator(small_model(), dtype="float32")
    assert atoms.calc.potential.dtype == torch.float32
    assert ref.calc.potential.dtype == torch.float64
    np.testing.assert_allclose(
        atoms.get_forces(), ref.get_forces(), atol=1e-4 * np.abs(ref.get_forces()).max()
    )
    assert atoms.get_potential_energy() == pytest.approx(
        ref.get_potential_energy(), rel=1e-5
    )


@pytest.mark.cuda
def test_runs_on_cuda_and_agrees_with_cpu():
    atoms = water_cluster()
    ref = atoms.copy()
    ref.calc = DPLCalculator(small_model())
    atoms.calc = DPLCalculator(small_model(), device="cuda")
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-10)


def test_ensemble_mean_and_force_deviation():
    models = [small_model(1), small_model(2), small_model(3)]
    atoms = water_cluster()
    singles = []
    for model in models:
        one = atoms.copy()
        one.calc = DPLCalculator(model)
        singles.append((one.get_potential_energy(), one.get_forces(), one.get_stress()))
    atoms.calc = DPLCalculator(models)
    forces = np.stack([s[1] for s in singles])
    np.testing.assert_allclose(atoms.get_forces(), forces.mean(0), atol=1e-12)
    assert atoms.get_potential_energy() == pytest.approx(
        np.mean([s[0] for s in singles]), abs=1e-12
    )
    np.testing.assert_allclose(
        atoms.get_stress(), np.mean([s[2] for s in singles], axis=0), atol=1e-12
    )
    # DeePMD-kit's max_devi_f, written out by hand for three models.
    mean = forces.mean(0)
    per_atom = np.sqrt(
        sum(np.sum((f - mean) ** 2, axis=1) for f in forces) / len(forces)
    )
    results = atoms.calc.results
    np.testing.assert_allclose(results["atom_force_deviation"], per_atom, atol=1e-12)
    assert results["force_deviation"] == pytest.approx(per_atom.max(), abs=1e-12)
    assert results["force_deviation"] > 0
    # Identical models do not deviate.
    twin = atoms.copy()
    twin.calc = DPLCalculator([small_model(1), small_model(1)])
    twin.get_forces()
    assert twin.calc.results["force_deviation"] < 1e-12


def test_model_file_that_does_not_exist(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        DPLCalculator(tmp_path / "missing.pt")


def test_ase_velocity_verlet_conserves_energy_with_lj():
    atoms = argon(n=2, a=5.4, jitter=0.05)
    atoms.calc = DPLCalculator(lj(cutoff=5.0))
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(0, np.sqrt(39.95 * units.kB * 60), (len(atoms), 3)))
    e0 = atoms.get_total_energy()
    energies = []
    dyn = VelocityVerlet(atoms, timestep=2.0 * units.fs)
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=10)
    dyn.run(200)
    drift = np.abs(np.array(energies) - e0).max() / len(atoms)
    assert drift < 2e-5  # eV/atom over 400 fs


def test_ase_langevin_thermalises_with_lj():
    atoms = argon(n=2, a=5.7, jitter=0.05)
    atoms.calc = DPLCalculator(lj(cutoff=5.5))
    dyn = Langevin(atoms, 5.0 * units.fs, temperature_K=120.0, friction=0.02,
                   fixcm=False,
                   rng=np.random.default_rng(1))
    temps = []
    dyn.attach(lambda: temps.append(atoms.get_temperature()), interval=5)
    dyn.run(400)
    # From rest to the bath temperature: the second half averages near 120 K
    # (32 atoms, so single samples fluctuate by ~25%).
    assert np.mean(temps[len(temps) // 2:]) == pytest.approx(120.0, rel=0.2)


def test_frozen_model_file_gives_the_same_results(tmp_path):
    from deepmd_like.nn.export import freeze

    model = small_model()
    freeze(model, tmp_path / "model.pt")
    atoms = water_cluster()
    ref = atoms.copy()
    ref.calc = DPLCalculator(model)
    atoms.calc = DPLCalculator(str(tmp_path / "model.pt"))
    assert atoms.get_potential_energy() == pytest.approx(
        ref.get_potential_energy(), abs=1e-10
    )
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-10)
