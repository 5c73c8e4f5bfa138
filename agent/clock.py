"""Time, injected: the pipeline asks a :class:`Clock` instead of calling :mod:`time` itself."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (pacing, timeouts)."""

    def perf(self) -> float:
        """High-resolution seconds for latency measurement."""

    def wall(self) -> float:
        """Seconds since the Unix epoch (timestamps in payloads)."""

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        """Wait until ``monotonic() >= deadline``; return False if ``stop`` was set first."""


class SystemClock:
    # the functions themselves, not methods that call them: the pipeline reads these clocks
    # several times a window, and a Python frame per read costs more than the read
    monotonic = staticmethod(time.monotonic)
    perf = staticmethod(time.perf_counter)
    wall = staticmethod(time.time)

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            return not stop.wait(remaining)
        return not stop.is_set()


class FakeClock:
    """A clock that only moves when told to (tests); sleeping advances it instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = 0.0
        self._wall0 = start

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def monotonic(self) -> float:
        return self._t

    def perf(self) -> float:
        return self._t

    def wall(self) -> float:
        return self._wall0 + self._t

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return False
        self._t = max(self._t, deadline)
        return True
