"""Build the sample source a profile asks for (``[source] kind``)."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.clock import Clock
from agent.errors import ConfigError
from agent.profile import Profile
from agent.sensors.bus import BusFactory
from agent.sources import ReplaySource, Source


def make_source(
    profile: Profile,
    *,
    clock: Clock,
    stop: threading.Event,
    recording: Path | None = None,
    speed: float | None = None,
    loop: bool | None = None,
    chunk_samples: int | None = None,
    bus_factory: BusFactory | None = None,
) -> tuple[Source, str]:
    """The source and a name for it in messages. A ``recording`` override always replays.

    ``bus_factory`` opens the I2C bus for ``kind = "sensor"`` (default: smbus2 on /dev/i2c-N;
    tests pass the emulation from :mod:`agent.testing`)."""
    src = profile.source
    if recording is not None or src.kind == "replay":
        path = recording if recording is not None else profile.resolve(src.path)
        source = ReplaySource(
            path,
            clock=clock,
            stop=stop,
            speed=src.speed if speed is None else speed,
            chunk_samples=chunk_samples or src.chunk_samples,
            loop=src.loop if loop is None else loop,
        )
        return source, str(path)
    if src.kind == "sensor":
        from agent.sensors.source import open_sensor_source

        sensor = open_sensor_source(
            profile.sensor,
            clock=clock,
            stop=stop,
            chunk_samples=chunk_samples or src.chunk_samples,
            bus_factory=bus_factory,
            where=str(profile.file),
        )
        return sensor, sensor.name
    raise ConfigError(f"source.kind {src.kind!r} is not supported")
