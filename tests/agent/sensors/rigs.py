"""Test rigs: an emulated chip on an emulated bus, a fake clock, and the profile's sensor config."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.clock import FakeClock
from agent.profile_tables import SensorConfig
from agent.sensors.imu import ImuDriver
from agent.sensors.source import DRIVERS, SensorSource, imu_settings, open_sensor_source
from agent.testing.feeds import ConstantFeed, ImuFeed, RecordingFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.lsm6dsox_model import Lsm6dsoxModel
from agent.testing.mpu6050_model import Mpu6050Model

ROOT = Path(__file__).resolve().parents[3]
RECORDING = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"
ADDRESS = {"mpu6050": 0x68, "mpu6500": 0x68, "mpu9250": 0x68, "lsm6dsox": 0x6A}
RATE = {"mpu6050": 50.0, "mpu6500": 50.0, "mpu9250": 50.0, "lsm6dsox": 52.0}
HALF_LSB_G = 0.5 / 8192
STILL = (0.01, -0.02, 0.98, 0.001, -0.002, 0.003)


def ramp_feed(rate_hz: float = 50.0, n: int = 100_000) -> RecordingFeed:
    """Every sample differs from the last (never stuck) and tells its index: acc_x = k / 8192."""
    k = np.arange(n, dtype=np.float64)
    values = np.stack(
        [(k % 8000) / 8192, -(k % 7000) / 8192, np.ones(n), k % 50 * 0.01, -k % 30 * 0.01, 0 * k],
        axis=1,
    )
    return RecordingFeed(values, rate_hz)


@dataclass
class Rig:
    chip_name: str
    clock: FakeClock
    bus: EmulatedBus
    chip: Any
    config: SensorConfig
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> int:
        return self.config.address

    def driver(self) -> ImuDriver:
        def sleep(s: float) -> None:
            self.clock.advance(s)

        return DRIVERS[self.config.chip](self.bus, imu_settings(self.config), sleep)

    def source(self, chunk_samples: int = 10) -> SensorSource:
        return open_sensor_source(
            self.config,
            clock=self.clock,
            stop=self.stop,
            chunk_samples=chunk_samples,
            bus_factory=self.bus.factory,
        )


def make_rig(
    chip: str = "mpu6050",
    feed: ImuFeed | None = None,
    *,
    rate_error: float = 0.0,
    who_am_i: int | None = None,
    freq_fine: int = 0,
    **config: Any,
) -> Rig:
    clock = FakeClock()
    feed = feed if feed is not None else RecordingFeed.from_file(RECORDING)
    model: Any
    if chip == "lsm6dsox":
        model = Lsm6dsoxModel(
            feed, rate_error=rate_error, who_am_i=who_am_i or 0x6C, freq_fine=freq_fine
        )
    else:
        model = Mpu6050Model(feed, variant=chip, rate_error=rate_error, who_am_i=who_am_i)
    cfg = dataclasses.replace(SensorConfig(), chip=chip, address=ADDRESS[chip], rate_hz=RATE[chip])
    cfg = dataclasses.replace(cfg, **config)
    bus = EmulatedBus(clock, {cfg.address: model})
    return Rig(chip, clock, bus, model, cfg)


def still_rig(chip: str = "mpu6050", **config: Any) -> Rig:
    return make_rig(chip, ConstantFeed(STILL), **config)


SPOIL = {
    "a NaN value": lambda c: dataclasses.replace(
        c, values=np.where(np.arange(len(c))[:, None] == 1, np.nan, c.values)
    ),
    "time going back": lambda c: dataclasses.replace(c, t=c.t - 1.0),
}
"""Ways a sensor block could break the recording's sample rule (a driver's bug, a clock
stepping back): ``record`` must refuse the block, not write a file its reader refuses."""


def spoil_sensor_block(monkeypatch: Any, how: str, at: int = 3) -> None:
    """Make the ``at``-th chunk of every sensor source that ``record`` opens break the rule."""
    from agent.sensors import record

    def opened(*args: Any, **kwargs: Any) -> SensorSource:
        source = open_sensor_source(*args, **kwargs)
        chunks = source.chunks

        def spoilt() -> Any:
            inner = chunks()
            try:
                for i, chunk in enumerate(inner):
                    yield SPOIL[how](chunk) if i == at else chunk
            finally:
                inner.close()

        source.chunks = spoilt  # type: ignore[method-assign]
        return source

    monkeypatch.setattr(record, "open_sensor_source", opened)
