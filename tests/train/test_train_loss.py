"""Loss prefactors, normalisation and masks, against sums written out by hand."""

import math

import pytest
import torch

from deepmd_like.config import LossConfig
from deepmd_like.train.loss import EnergyLoss, ErrorMetrics


def _batch():
    # Two structures: 2 atoms and 3 atoms; the second has no forces.
    return {
        "energy": torch.tensor([-10.0, -20.0], dtype=torch.float64),
        "forces": torch.arange(15, dtype=torch.float64).reshape(5, 3) / 10,
        "virial": torch.zeros(2, 3, 3, dtype=torch.float64),
        "has_forces": torch.tensor([True, False]),
        "has_virial": torch.tensor([False, True]),
        "n_atoms": torch.tensor([2, 3]),
        "structure_index": torch.tensor([0, 0, 1, 1, 1]),
    }


def _prediction(batch):
    return {
        "energy": batch["energy"] + torch.tensor([0.4, -0.9], dtype=torch.float64),
        "forces": batch["forces"] + 0.1 * torch.ones(5, 3, dtype=torch.float64),
        "virial": torch.full((2, 3, 3), 0.3, dtype=torch.float64),
    }


def test_prefactors_interpolate_with_learning_rate():
    loss = EnergyLoss(
        LossConfig(
            start_pref_e=0.02,
            limit_pref_e=1,
            start_pref_f=1000,
            limit_pref_f=1,
            start_pref_v=2,
            limit_pref_v=4,
        ),
        1e-3,
    )
    assert loss.prefactors(1e-3) == pytest.approx((0.02, 1000, 2))
    assert loss.prefactors(0.0) == pytest.approx((1, 1, 4))
    pe, pf, pv = loss.prefactors(2.5e-4)
    assert pe == pytest.approx(1 + (0.02 - 1) * 0.25)
    assert pf == pytest.approx(1 + 999 * 0.25)
    assert pv == pytest.approx(4 - 2 * 0.25)


def test_loss_value_by_hand():
    batch = _batch()
    cfg = LossConfig(
        start_pref_e=3,
        limit_pref_e=3,
        start_pref_f=5,
        limit_pref_f=5,
        start_pref_v=7,
        limit_pref_v=7,
    )
    value = EnergyLoss(cfg, 1.0)(_prediction(batch), batch, lr=0.5)
    # Energy: mean over structures of dE^2 / N.
    e_term = 3 * (0.4**2 / 2 + 0.9**2 / 3) / 2
    # Forces: only the 2 atoms of structure 0 (6 components), each off by 0.1.
    f_term = 5 * 0.1**2
    # Virial: only structure 1, mean of 9 components 0.3^2 divided by 3 atoms,
    # averaged over the 2 structures of the batch.
    v_term = 7 * (0.3**2 / 3) / 2
    assert float(value) == pytest.approx(e_term + f_term + v_term, rel=1e-12)


def test_equal_sizes_match_deepmd_normalisation():
    # For one system (equal N), DeePMD-kit's energy term is mean(dE^2) / N.
    n = 4
    batch = {
        "energy": torch.zeros(3, dtype=torch.float64),
        "n_atoms": torch.full((3,), n),
        "structure_index": torch.arange(3).repeat_interleave(n),
    }
    d = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    cfg = LossConfig(start_pref_e=1, limit_pref_e=1, start_pref_f=0, limit_pref_f=0)
    value = EnergyLoss(cfg, 1.0)({"energy": d}, batch, lr=1.0)
    assert float(value) == pytest.approx(float(d.square().mean()) / n, rel=1e-14)


def test_metrics_by_hand():
    batch = _batch()
    m = ErrorMetrics()
    m.update(_prediction(batch), batch)
    r = m.result()
    assert r["energy_rmse"] == pytest.approx(math.sqrt((0.4**2 + 0.9**2) / 2))
    assert r["energy_mae"] == pytest.approx((0.4 + 0.9) / 2)
    assert r["energy_rmse_per_atom"] == pytest.approx(
        math.sqrt(((0.4 / 2) ** 2 + (0.3) ** 2) / 2)
    )
    assert r["energy_mae_per_atom"] == pytest.approx((0.2 + 0.3) / 2)
    assert r["force_rmse"] == pytest.approx(0.1)
    assert r["force_mae"] == pytest.approx(0.1)
    assert r["virial_rmse"] == pytest.approx(0.3)
    assert r["virial_rmse_per_atom"] == pytest.approx(0.1)


def test_metrics_accumulate_like_one_batch():
    batch = _batch()
    pred = _prediction(batch)
    whole = ErrorMetrics()
    whole.update(pred, batch)
    split = ErrorMetrics()
    for s, atoms in ((0, slice(0, 2)), (1, slice(2, 5))):
        sub = {
            "energy": batch["energy"][s : s + 1],
            "forces": batch["forces"][atoms],
            "virial": batch["virial"][s : s + 1],
            "has_forces": batch["has_forces"][s : s + 1],
            "has_virial": batch["has_virial"][s : s + 1],
            "n_atoms": batch["n_atoms"][s : s + 1],
            "structure_index": torch.zeros(atoms.stop - atoms.start, dtype=torch.int64),
        }
        sub_pred = {
            "energy": pred["energy"][s : s + 1],
            "forces": pred["forces"][atoms],
            "virial": pred["virial"][s : s + 1],
        }
        split.update(sub_pred, sub)
    for key, value in whole.result().items():
        assert split.result()[key] == pytest.approx(value, rel=1e-12)
