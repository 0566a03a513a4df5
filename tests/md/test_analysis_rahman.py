"""Liquid argon at Rahman's state point, end to end (deck, engine, analysis).

Rahman, "Correlations in the motion of atoms in liquid argon", Phys. Rev.
136, A405 (1964): 864 Lennard-Jones atoms (epsilon/k_B = 120 K, sigma =
3.4 Å, m = 39.95 amu) at 94.4 K and 1.374 g/cm³, interactions cut at
2.25 sigma, time step 10 fs. He found the self-diffusion coefficient
D = 2.43e-5 cm²/s and the first maximum of g(r) at r = 3.7 Å (his Fig. 2).
"""

import pytest

from deepmd_like.md.deck import deck_from_dict
from deepmd_like.md.run import run_deck

RAHMAN_D_CM2_PER_S = 2.43e-5
RAHMAN_FIRST_PEAK_A = 3.7


@pytest.mark.slow
def test_rahman_diffusion_and_first_peak(tmp_path):
    deck = deck_from_dict(
        {
            "structure": {
                "lattice": {"kind": "fcc", "symbol": "Ar", "density_g_cm3": 1.374,
                            "repeat": [6, 6, 6]},
            },
            "potential": {
                "lennard_jones": {"epsilon_K": 120.0, "sigma_A": 3.4,
                                  "cutoff_A": 2.25 * 3.4, "smoothing": "energy_shift"},
            },
            "timestep_fs": 10.0,
            "initial_temperature_K": 250.0,
            "seed": 1964,
            "stages": [
                # Melt the crystal, bring it to 94.4 K, then run free (NVE).
                {"name": "melt", "steps": 300, "thermostat": "langevin",
                 "temperature_K": 250.0},
                {"name": "nvt", "steps": 500, "thermostat": "langevin",
                 "temperature_K": 94.4, "thermostat_time_fs": 300.0},
                {"name": "nve", "steps": 1500},
            ],
            "reporters": {
                "thermo": {"interval": 50},
                "trajectory": {"interval": 2, "stages": ["nve"]},
                "checkpoint": {"interval": 0},
                "progress": False,
            },
            "analysis": {
                "rdf": {"pairs": [["Ar", "Ar"]], "r_max_A": 8.0, "bins": 160,
                        "max_frames": 40},
                "msd": {"fit_start_fs": 1500.0},
                "max_lag_fs": 5000.0,
            },
        },
        source="rahman",
    )
    summary = run_deck(deck, tmp_path / "run", progress=False)
    numbers = summary.analysis
    import numpy as np

    thermo = np.genfromtxt(tmp_path / "run" / "thermo.csv", delimiter=",", names=True)
    nve_temperature = thermo["T_K"][thermo["step"] > 800].mean()
    assert nve_temperature == pytest.approx(94.4, abs=4.0)
    assert numbers["diffusion_msd_cm2_per_s"] == pytest.approx(
        RAHMAN_D_CM2_PER_S, rel=0.10
    )
    assert numbers["rdf_Ar-Ar_first_peak_position_A"] == pytest.approx(
        RAHMAN_FIRST_PEAK_A, rel=0.05
    )
    # A dense liquid's first peak: well above 1, far below a crystal's.
    assert 2.5 < numbers["rdf_Ar-Ar_first_peak_height"] < 3.3
