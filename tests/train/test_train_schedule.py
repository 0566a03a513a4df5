"""The learning-rate schedule against DeePMD-kit's rule, written out by hand."""

import math

import pytest

from deepmd_like.train.schedule import ExponentialDecay


def test_reaches_stop_lr_at_numb_steps_in_stages():
    s = ExponentialDecay(
        start_lr=1e-3, stop_lr=3.51e-8, decay_steps=5000, numb_steps=1_000_000
    )
    rate = math.exp(math.log(3.51e-8 / 1e-3) / 200)
    assert s.rate == pytest.approx(rate, rel=1e-14)
    assert s(0) == 1e-3
    assert s(4999) == 1e-3
    assert s(5000) == pytest.approx(1e-3 * rate, rel=1e-14)
    assert s(12_345) == pytest.approx(1e-3 * rate**2, rel=1e-14)
    assert s(1_000_000) == pytest.approx(3.51e-8, rel=1e-12)
    # Beyond numb_steps the rate stays at stop_lr.
    assert s(2_000_000) == pytest.approx(3.51e-8, rel=1e-12)


@pytest.mark.parametrize(
    "numb_steps, decay_steps, stage",
    [
        (2000, 5000, 100),  # short run, numb_steps // 10 > 100: stages of 100
        (900, 5000, 10),  # short run: numb_steps // 100 + 1
        (1000, 1000, 11),  # decay_steps == numb_steps counts as short
        (1001, 5000, 11),
        (1010, 5000, 100),  # numb_steps // 10 > 100: stages of 100 steps
        (50_000, 5000, 5000),  # long run: as given
    ],
)
def test_short_run_adjustment(numb_steps, decay_steps, stage):
    s = ExponentialDecay(1e-3, 3.5e-8, decay_steps, numb_steps)
    assert s.stage_steps == stage
    expected_rate = math.exp(math.log(3.5e-8 / 1e-3) / (numb_steps / stage))
    assert s.rate == pytest.approx(expected_rate, rel=1e-14)
    assert s(stage - 1) == 1e-3
    assert s(stage) == pytest.approx(1e-3 * expected_rate, rel=1e-14)
    # The last step's rate is one stage above stop_lr at most.
    assert 3.5e-8 <= s(numb_steps - 1) <= 3.5e-8 / expected_rate * (1 + 1e-12)


def test_explicit_decay_rate_is_floored_at_stop_lr():
    s = ExponentialDecay(1e-3, 1e-5, 10, 10_000, decay_rate=0.5)
    assert s(10) == 5e-4
    assert s(40) == pytest.approx(1e-3 * 0.5**4)
    assert s(1000) == 1e-5
