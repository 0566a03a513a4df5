"""g(r) of liquid argon at Rahman's state point against a published LJ g(r).

State point: A. Rahman, "Correlations in the motion of atoms in liquid
argon", Phys. Rev. 136, A405 (1964): 864 Lennard-Jones atoms with
epsilon/k_B = 120 K, sigma = 3.4 Å, m = 39.95 amu at 94.4 K and 1.374 g/cm³
(reduced density rho* = 0.8141, T* = 0.7867), interactions cut at 2.25 sigma.

Reference: A. Morsali, E. K. Goharshadi, G. A. Mansoori and M. Abbaspour,
"An accurate expression for radial distribution function of the
Lennard-Jones fluid", Chem. Phys. 310, 11-15 (2005). Their Eq. (1) gives
g(r*) of the Lennard-Jones fluid in closed form, with eleven parameters that
depend on rho* and T* through their Eqs. (2)-(8) and the 65 coefficients of
their Table 1 (copied below), fitted to molecular-dynamics g(r) of the fluid.
At Rahman's state it puts the first maximum at r* = 1.0864 (3.694 Å) with
g = 2.847; Rahman's own Fig. 2 shows the maximum at 3.7 Å.
"""

import math

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk

from deepmd_like.md import Langevin, LennardJones, Simulation
from deepmd_like.md.analysis import radial_distribution

SIGMA_A = 3.4
EPSILON_EV = 120.0 * units.kB
MASS_AMU = 39.95
DENSITY_G_CM3 = 1.374
TEMPERATURE_K = 94.4

# Table 1 of Morsali et al. (2005), q1 .. q65 in order.
MORSALI_Q = (
    9.24792, -2.64281, 0.133386, -1.35932, 1.25338, 0.45602, -0.326422,
    0.045708, -0.0287681, 0.663161, -0.243089, 1.24749, -2.059, 0.04261,
    1.65041, -0.343652, -0.037698, 0.008899, -0.0677912, -1.39505, 0.512625,
    36.9323, -36.8061, 21.7353, -7.76671, 1.36342, 16.4821, -0.300612,
    0.0937844, -61.744, 145.285, -168.087, 98.2181, -23.0583, -8.33289,
    2.1714, 1.0063, 0.0325039, -1.28792, 2.5487, -26.1615, 27.4846, 1.68124,
    6.74296, -6.7293, -59.5002, 10.2466, -0.43596, 1.25225, -1.0179,
    0.358564, -0.18533, 0.0482119, 1.27592, -1.78785, 0.634741, -5.668,
    -3.62671, 0.680654, 0.294481, 0.186395, -0.286954, 6.01325, 3.84098,
    0.60793,
)


def morsali_g(r_reduced: np.ndarray, rho: float, temperature: float) -> np.ndarray:
    """g(r*) of the LJ fluid from Morsali et al. (2005), Eqs. (1)-(8)."""
    q = (None,) + MORSALI_Q  # 1-based, as in the paper
    exp_t = [math.exp(-q[k] * temperature) for k in (3, 5, 12, 14)]

    def decay(o: int, e1: float, e2: float) -> float:
        # Eq. (2): the decay rates a and g of the two damped waves.
        return (q[o] + q[o + 1] * e1 + q[o + 3] * e2 + q[o + 5] / rho
                + q[o + 6] / rho**2 + q[o + 7] * e1 / rho**3
                + q[o + 8] * e2 / rho**4)

    def frequency(o: int) -> float:
        # Eq. (3): the wave numbers c and k, quintic in the density.
        value = q[o] + q[o + 1] * math.exp(-q[o + 2] * temperature)
        return value + sum(q[o + 2 + p] * rho**p for p in range(1, 6))

    a = decay(1, exp_t[0], exp_t[1])
    g = decay(10, exp_t[2], exp_t[3])
    c, k = frequency(19), frequency(27)
    b = q[35] + q[36] * math.exp(-q[37] * rho)  # Eq. (4)
    h = q[38] + q[39] * math.exp(-q[40] * rho)
    d = q[41] + q[42] * math.exp(-q[43] * rho) + q[44] * rho  # Eq. (5)
    l_ = q[45] + q[46] * math.exp(-q[47] * rho) + q[48] * rho
    s = (q[49] + q[50] * rho + q[51] / temperature + q[52] / temperature**2
         + q[53] / temperature**3) / (q[54] + q[55] * rho + q[56] * rho**2)
    m = (q[57] + q[58] * math.exp(-q[59] * temperature) + q[60] / temperature
         + q[61] * rho + q[62] * rho**2)  # Eq. (7)
    n = q[63] + q[64] * math.exp(-q[65] * temperature)  # Eq. (8)

    x = np.asarray(r_reduced, dtype=float)
    waves = (np.exp(-(a * x + b)) * np.sin(c * x + d)
             + np.exp(-(g * x + h)) * np.cos(k * x + l_))
    outer = 1.0 + waves / x**2
    inner = s * np.exp(-((m * x + n) ** 4))
    return np.where(x > 1.0, outer, inner)


def reduced_state() -> tuple[float, float]:
    number_density = DENSITY_G_CM3 / (MASS_AMU / units.mol) * 1e-24  # 1/Å^3
    return number_density * SIGMA_A**3, TEMPERATURE_K / 120.0


def reference_first_peak() -> tuple[float, float]:
    rho, temperature = reduced_state()
    x = np.linspace(0.9, 1.5, 60001)
    g = morsali_g(x, rho, temperature)
    top = int(np.argmax(g))
    return float(x[top]) * SIGMA_A, float(g[top])


def test_reference_is_at_rahmans_state():
    """The reduced state and the reference's own first peak (sanity)."""
    rho, temperature = reduced_state()
    assert rho == pytest.approx(0.8141, abs=1e-3)
    assert temperature == pytest.approx(0.7867, abs=1e-4)
    position, height = reference_first_peak()
    # Rahman's Fig. 2: the first maximum at 3.7 Å.
    assert position == pytest.approx(3.7, abs=0.05)
    assert 2.5 < height < 3.2
    # Far away the fit tends to 1; inside the core it vanishes.
    assert morsali_g(np.array([8.0]), rho, temperature)[0] == pytest.approx(
        1.0, abs=0.02
    )
    assert morsali_g(np.array([0.8]), rho, temperature)[0] < 1e-3


@pytest.mark.slow
def test_first_peak_matches_published_lj_rdf():
    """First peak of g(r) within 5 % of Morsali et al.'s at Rahman's state.

    864 atoms, 2.25 sigma energy-shifted cutoff, dt 10 fs (Rahman's step):
    2 ps at 250 K melts the fcc start, 4 ps at 94.4 K (Langevin) equilibrate,
    then 6 ps of sampling, a frame every 100 fs. With 60 frames of 864 atoms
    the peak height's statistical error is about 1 % (each 0.05 Å bin at the
    peak holds ~200 pairs per frame), well inside the 5 % tolerance.
    """
    torch.set_num_threads(1)
    n_atoms = 4 * 6**3
    volume = n_atoms * MASS_AMU / (units.mol * DENSITY_G_CM3) * 1e24
    atoms = bulk("Ar", "fcc", a=volume ** (1 / 3) / 6, cubic=True).repeat(6)
    atoms.set_masses([MASS_AMU] * n_atoms)
    potential = LennardJones(EPSILON_EV, SIGMA_A, 2.25 * SIGMA_A,
                             smoothing="energy_shift")
    dt = 10.0
    sim = Simulation(atoms, potential, Langevin(dt, 250.0, friction_per_fs=0.01),
                     skin=1.0, seed=1964)
    sim.initialize_velocities(250.0)
    sim.run(200)
    sim.set_integrator(Langevin(dt, TEMPERATURE_K, friction_per_fs=0.01))
    sim.run(400)

    frames = []

    class Frames:
        interval = 10

        def report(self, simulation, observables):
            frames.append(simulation.state.positions.numpy().copy())

    sim.run(600, reporters=[Frames()])
    positions = np.stack(frames)
    cells = np.repeat(atoms.cell[:][None], len(positions), 0)
    rdf = radial_distribution(positions, cells, atoms.get_atomic_numbers(),
                              ("Ar", "Ar"), r_max=6.0, n_bins=120)
    position, height = rdf.first_peak()
    reference_position, reference_height = reference_first_peak()
    assert position == pytest.approx(reference_position, rel=0.05)
    assert height == pytest.approx(reference_height, rel=0.05)
    # A tighter look at the position: the bins are 0.05 Å wide.
    assert abs(position - reference_position) < 0.05
