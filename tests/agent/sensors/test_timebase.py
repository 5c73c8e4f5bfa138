"""Sample times: counted at the chip's rate, disciplined to the host clock, gaps where due."""

import numpy as np
import pytest

from agent.sensors.timebase import SampleTimer
from agent.windowing import GAP_FACTOR


def simulate(rate_error: float, hours: float = 2.0, poll_s: float = 0.5, seed: int = 1):
    """A chip running ``rate_error`` off 50 Hz, polled with jitter for ``hours``."""
    rng = np.random.default_rng(seed)
    true_rate = 50.0 * (1 + rate_error)
    timer = SampleTimer(50.0)
    h0 = h = 1000.0
    timer.restart(h0)
    produced = 0
    stamps, truth = [], []
    while h - h0 < hours * 3600:
        h += poll_s + rng.uniform(-0.02, 0.08)  # scheduling jitter, the odd late poll
        total = int(np.floor((h - h0) * true_rate))
        stamps.append(timer.stamp(total - produced, h))
        truth.append(h0 + np.arange(produced + 1, total + 1) / true_rate)
        produced = total
    return timer, np.concatenate(stamps), np.concatenate(truth)


@pytest.mark.parametrize("rate_error", [-0.03, 0.0, 0.02])
def test_no_drift_over_hours(rate_error: float) -> None:
    timer, t, truth = simulate(rate_error)
    settled = slice(50 * 60, None)  # after the first minute
    assert np.abs(t - truth)[settled].max() < 0.02  # within 20 ms after 2 hours
    assert timer.rate_hz == pytest.approx(50 * (1 + rate_error), rel=2e-3)
    steps = np.diff(t) * 50 * (1 + rate_error)  # in true periods
    assert steps.min() > 0.9 and steps.max() < 1.1  # evenly spaced: never a false gap
    assert steps.max() < GAP_FACTOR


def test_counting_at_the_nominal_rate_would_drift() -> None:
    _, t, truth = simulate(0.02, hours=0.5)
    naive = truth[0] + np.arange(len(truth)) / 50.0
    assert abs(naive[-1] - truth[-1]) > 30  # 2 % of half an hour: the problem we solve
    assert abs(t[-1] - truth[-1]) < 0.02


def test_restart_makes_a_gap() -> None:
    timer = SampleTimer(50.0)
    timer.restart(10.0)
    first = timer.stamp(10, 10.2)
    timer.restart(10.21)  # FIFO reset right after the read
    after = timer.stamp(10, 10.41)
    step = after[0] - first[-1]
    assert step >= 2 * 0.02 * 0.95 and step > GAP_FACTOR * 0.02
    assert np.all(np.diff(after) > 0)


def test_missing_samples_resync_as_a_gap() -> None:
    timer = SampleTimer(50.0)
    timer.restart(0.0)
    timer.stamp(10, 0.2)
    late = timer.stamp(10, 5.0)  # 10 samples where 240 were due: samples went missing
    assert timer.resyncs == 1
    assert late[-1] == pytest.approx(5.0 - 0.01, abs=0.002)


def test_stamp_needs_a_start() -> None:
    with pytest.raises(RuntimeError):
        SampleTimer(50.0).stamp(1, 0.0)
    assert SampleTimer(50.0).restarts == 0
