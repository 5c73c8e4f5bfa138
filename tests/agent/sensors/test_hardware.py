"""On a real board with a real sensor (HAR_AGENT_HARDWARE=1): probe, configure, stream.

Wire an MPU-6050 breakout (or set HAR_AGENT_PROFILE to a profile naming another chip) to I2C bus 1
and run ``HAR_AGENT_HARDWARE=1 pytest -m hardware``. Keep the sensor still on a table.
"""

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from agent.clock import SystemClock
from agent.profile import load_profile
from agent.sensors.bus import open_smbus
from agent.sensors.probe import scan
from agent.sensors.source import open_sensor_source

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(
        os.environ.get("HAR_AGENT_HARDWARE") != "1", reason="needs a real I2C bus and sensor"
    ),
]


def profile():  # type: ignore[no-untyped-def]
    return load_profile(os.environ.get("HAR_AGENT_PROFILE", str(ROOT / "profiles" / "pi4.toml")))


def test_probe_finds_the_profiles_chip() -> None:
    cfg = profile().sensor
    bus = open_smbus(cfg.bus)
    try:
        found = {f.address: f for f in scan(bus)}
    finally:
        bus.close()
    assert cfg.address in found and found[cfg.address].chip_key == cfg.chip


def test_streams_at_rate_with_gravity_and_no_gaps() -> None:
    cfg = profile().sensor
    stop = threading.Event()
    clock = SystemClock()
    source = open_sensor_source(cfg, clock=clock, stop=stop)
    chunks = []
    end = clock.monotonic() + 5.0
    for chunk in source.chunks():
        chunks.append(chunk)
        if clock.monotonic() >= end:
            stop.set()
    t = np.concatenate([c.t for c in chunks])
    v = np.concatenate([c.values for c in chunks])
    assert len(t) == pytest.approx(5.0 * source.info.rate_hz, rel=0.1)
    assert np.diff(t).max() < 1.5 / source.info.rate_hz
    assert np.linalg.norm(v[:, :3], axis=1).mean() == pytest.approx(1.0, abs=0.1)  # gravity
    assert np.abs(v[:, 3:]).mean() < 0.1  # still: little rotation
    assert source.health.state == "ok"
