"""An LSM6DSO32 (``sensor.chip = "lsm6dso32"``) through the source, as the agent opens it."""

import dataclasses
import threading

import numpy as np
import pytest

from agent.clock import FakeClock
from agent.profile_tables import SensorConfig
from agent.sensors.source import open_sensor_source
from agent.testing.feeds import ConstantFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.lsm6dsox_model import Lsm6dsoxModel
from tests.agent.sensors.rigs import STILL


def test_lsm6dso32_through_the_source() -> None:
    clock = FakeClock()
    model = Lsm6dsoxModel(ConstantFeed(STILL), part="lsm6dso32")  # WHO_AM_I 0x6C, like a DSOX
    bus = EmulatedBus(clock, {0x6A: model})
    config = dataclasses.replace(
        SensorConfig(), chip="lsm6dso32", address=0x6A, rate_hz=52.0, accel_range_g=32
    )
    source = open_sensor_source(
        config, clock=clock, stop=threading.Event(), bus_factory=bus.factory
    )
    assert source.info.chip == "LSM6DSO32" and source.header.source["sensor"] == "LSM6DSO32"
    accel = [c for c in source.header.channels if c.name.startswith("acc")]
    assert accel[0].full_scale == pytest.approx(32767 * 0.976e-3)  # the DSO32 clips at +-32 g
    chunks = source.chunks()
    values = np.concatenate([next(chunks).values for _ in range(10)])
    source.close()
    assert len(values) and np.allclose(values[:, :3], STILL[:3], atol=0.976e-3 / 2 + 1e-12)
