"""Sensor faults and the degraded state (pure logic, plus one log line per change).

:class:`SensorHealth` keeps the set of active faults. A fault is logged once when it starts and once
when it clears, however often it is reported in between; every change bumps :attr:`version`, which
is how the pipeline knows to publish the retained ``har/<device>/health`` message (docs/mqtt.md,
schema ``har.health/1``). :class:`StuckDetector` spots a sensor that repeats one sample.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.payload import iso_from_unix

HEALTH_SCHEMA = "har.health/1"

FAULTS = {
    "i2c_error": "I2C transfers keep failing",
    "chip_missing": "the sensor does not answer (or another chip does)",
    "fifo_overflow": "the FIFO overflowed: samples were lost",
    "stuck": "the sensor repeats one sample",
}

log = logging.getLogger(__name__)


class SensorHealth:
    def __init__(
        self, sensor: str, wall: Callable[[], float], logger: logging.Logger = log
    ) -> None:
        self.sensor = sensor
        self._wall = wall
        self._log = logger
        self._active: dict[str, tuple[str, float]] = {}
        self.counters: dict[str, int] = {
            "i2c_errors": 0,
            "reinits": 0,
            "overflows": 0,
            "fifo_resyncs": 0,
            "gaps": 0,
            "stuck_samples": 0,
        }
        self.version = 1
        """Bumped on every change of the active faults (starts at 1: 'ok' is worth publishing)."""

    @property
    def state(self) -> str:
        return "degraded" if self._active else "ok"

    @property
    def faults(self) -> tuple[str, ...]:
        return tuple(self._active)

    def fault(self, kind: str, detail: str) -> None:
        """Report a fault; logged (warning) only when it starts."""
        if kind not in FAULTS:
            raise ValueError(f"unknown sensor fault {kind!r}")
        if kind not in self._active:
            self._log.warning("sensor %s: %s: %s", self.sensor, FAULTS[kind], detail)
            self._active[kind] = (detail, self._wall())
            self.version += 1
        else:
            self._active[kind] = (detail, self._active[kind][1])

    def clear(self, kind: str) -> None:
        """The fault is over; logged (info) only if it was active."""
        if kind in self._active:
            _, since = self._active.pop(kind)
            elapsed = self._wall() - since
            self._log.info("sensor %s: '%s' cleared after %.1f s", self.sensor, kind, elapsed)
            self.version += 1

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        return {
            "schema": HEALTH_SCHEMA,
            "sensor": self.sensor,
            "state": self.state,
            "faults": [
                {"fault": k, "detail": d, "since": iso_from_unix(t)}
                for k, (d, t) in self._active.items()
            ],
            "counters": dict(self.counters),
            "ts": iso_from_unix(self._wall()),
        }

    def payload(self) -> bytes:
        return json.dumps(self.snapshot(), separators=(",", ":")).encode("utf-8")


def health_of(source: object) -> SensorHealth | None:
    """The health of a source that has one (live sensors), else None."""
    health = getattr(source, "health", None)
    return health if isinstance(health, SensorHealth) else None


class StuckDetector:
    """Flags samples once ``limit`` consecutive samples have been bit-for-bit identical.

    A live MEMS sensor always shows a few LSBs of noise, even lying still; a run of identical
    samples means the chip (or its FIFO) is stuck.
    """

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError(f"a stuck run needs at least 2 samples, got {limit}")
        self.limit = limit
        self._last: np.ndarray | None = None
        self._run = 0

    @property
    def stuck(self) -> bool:
        return self._run >= self.limit

    def update(self, values: np.ndarray) -> np.ndarray:
        """A mask over ``values`` [n, channels]: True where the sample belongs to a stuck run."""
        mask = np.zeros(len(values), dtype=bool)
        for i, row in enumerate(values):
            if self._last is not None and np.array_equal(row, self._last):
                self._run += 1
            else:
                self._run = 1
                self._last = row.copy()
            mask[i] = self._run >= self.limit
        return mask

    def reset(self) -> None:
        self._last = None
        self._run = 0
