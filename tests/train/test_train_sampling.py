"""System probabilities, automatic batch sizes and reproducible sampling."""

import numpy as np
import pytest

from deepmd_like.errors import UserError
from deepmd_like.train.sampling import (
    SystemSampler,
    resolve_batch_size,
    system_probabilities,
)
from deepmd_like.train.statistics import auto_sel, energy_shifts


@pytest.mark.parametrize(
    "n_atoms, rule, expected",
    [
        (192, "auto", 1),
        (3, "auto", 11),
        (32, "auto", 1),
        (31, "auto", 2),
        (6, "auto:64", 11),
        (5, 7, 7),
    ],
)
def test_batch_size(n_atoms, rule, expected):
    assert resolve_batch_size(rule, n_atoms) == expected


def test_probabilities():
    sizes = [10, 30, 20, 40]
    np.testing.assert_allclose(system_probabilities(sizes, "prob_uniform"), [0.25] * 4)
    np.testing.assert_allclose(
        system_probabilities(sizes, "prob_sys_size"), [0.1, 0.3, 0.2, 0.4]
    )
    # Two blocks of equal weight; sizes matter only within a block.
    np.testing.assert_allclose(
        system_probabilities(sizes, "prob_sys_size;0:2:0.5;2:4:0.5"),
        [0.125, 0.375, 0.5 * 20 / 60, 0.5 * 40 / 60],
    )
    np.testing.assert_allclose(
        system_probabilities(sizes, "prob_sys_size;0:1:3;1:4:1"),
        [0.75, 0.25 * 30 / 90, 0.25 * 20 / 90, 0.25 * 40 / 90],
    )
    np.testing.assert_allclose(
        system_probabilities(sizes, "prob_uniform", sys_probs=[1, 1, 2, 0]),
        [0.25, 0.25, 0.5, 0],
    )
    for bad in (
        "prob_sys_size;0:5:1",
        "prob_sys_size;2:1:1",
        "prob_size",
        "prob_sys_size;x",
    ):
        with pytest.raises(UserError):
            system_probabilities(sizes, bad)


def test_sampler_frequencies_and_epochs():
    sampler = SystemSampler([5, 15], [1, 3], np.array([0.25, 0.75]), seed=7)
    counts = np.zeros(2)
    seen = [[], []]
    for _ in range(4000):
        system, frames = sampler.next()
        counts[system] += 1
        seen[system].extend(frames)
        assert len(frames) == [1, 3][system]
    assert counts[0] / counts.sum() == pytest.approx(0.25, abs=0.03)
    # Every frame is used equally often: whole shuffled passes.
    for n, frames in zip([5, 15], seen):
        hist = np.bincount(frames, minlength=n)
        assert hist.max() - hist.min() <= 1 + len(frames) // n // 10


def test_sampler_state_continues_identically():
    import torch

    a = SystemSampler([7, 9], [2, 3], np.array([0.5, 0.5]), seed=1)
    for _ in range(13):
        a.next()
    state = a.state_dict()
    # The state survives a weights-only torch round trip (as in a checkpoint).
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = SystemSampler([7, 9], [2, 3], np.array([0.5, 0.5]), seed=999)
    b.load_state_dict(state)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_auto_sel_rounds_like_deepmd():
    # ratio 1.1, truncated, then up to a multiple of 4.
    assert auto_sel([41, 83]) == [48, 92]
    assert auto_sel([40, 80], ratio=1.0) == [40, 80]
    assert auto_sel([0, 1]) == [0, 4]


def test_energy_shifts_recover_per_element_energies():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 6, size=(30, 3)).astype(float)
    truth = np.array([-432.1, -13.6, -1030.0])
    energies = counts @ truth + rng.normal(scale=1e-3, size=30)
    np.testing.assert_allclose(energy_shifts(counts, energies), truth, atol=1e-3)
