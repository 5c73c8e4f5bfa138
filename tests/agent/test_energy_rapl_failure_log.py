"""A RAPL read failure is logged once, by the meter when it happens, not again by its reader."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent import energy_meters as em
from agent.energy import EnergyCounter
from tests.agent.test_energy import rapl_tree


@pytest.mark.parametrize("by_thread", [False, True], ids=["read", "poll-thread"])
def test_a_rapl_read_failure_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, by_thread: bool
) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 262143328850)})
    meter = em.RaplMeter.open(root, start=False)
    counter = EnergyCounter(meter)
    next(root.glob("intel-rapl:0/energy_uj")).unlink()
    with caplog.at_level(logging.INFO, logger="agent"):
        if by_thread:
            with pytest.raises(em.MeterError):
                meter.poll()  # what the polling thread does every poll_s
        span = counter.span()
    assert span.joules is None and span.failure is not None
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "energy_uj" in failures[0].getMessage() and failures[0].name == "agent.energy_meters"
