"""Sample times for FIFO data: counted at the chip's rate, disciplined to the host clock (pure).

A chip's oscillator is off by a fraction of a percent to a few percent, so times counted at the
nominal rate drift away from the host clock (2 % is 72 s an hour). Every FIFO read tells us how many
samples arrived by host time ``h``; the newest of them was taken, on average, half a period before
``h``. :class:`SampleTimer` steers the spacing of the times it hands out with a PI loop on that
phase error: the proportional part pulls the phase in (each step changes by at most ``max_slew`` of
a period, so the stream never shows a false gap), the integral part learns the chip's true period.
The result: evenly spaced times that follow the sample count and do not drift from the host clock.

A restart (after a FIFO reset, an overflow or a re-initialisation) starts a fresh run at the host
time of the reset, at least two periods after the last time handed out: a gap, which the windower
sees as one (it treats a step over 1.5 periods as a gap).
"""

from __future__ import annotations

import numpy as np

RESYNC_PERIODS = 25
"""A phase error beyond this many periods (samples went missing, the host was suspended) is not
slewed away: the next run starts at the host time, which shows as a gap."""


class SampleTimer:
    def __init__(
        self,
        nominal_hz: float,
        *,
        kp: float = 0.2,
        ki: float = 0.02,
        max_slew: float = 0.05,
        max_rate_error: float = 0.1,
    ) -> None:
        if not nominal_hz > 0:
            raise ValueError(f"the sample rate must be positive, got {nominal_hz}")
        self.nominal_period = 1.0 / nominal_hz
        self.kp, self.ki = kp, ki
        self.max_slew = max_slew
        self.max_rate_error = max_rate_error
        self.period = self.nominal_period
        """Current estimate of the chip's true sample period (s)."""
        self._t: float | None = None  # time of the last sample handed out (or of the run start)
        self._last: float | None = None
        self.restarts = 0
        self.resyncs = 0

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.period

    def restart(self, host_t: float) -> None:
        """The FIFO (re)started empty at host time ``host_t``: the next sample is a new run."""
        start = host_t
        if self._last is not None:
            start = max(start, self._last + self.period)
        self._t = start
        self.restarts += 1

    def stamp(self, n: int, host_t: float) -> np.ndarray:
        """Times (host clock, s) of ``n`` samples read at ``host_t``, oldest first."""
        if self._t is None:
            raise RuntimeError("SampleTimer.restart() must come first")
        if n <= 0:
            return np.zeros(0)
        step = self.period
        target = host_t - step / 2  # the newest sample is half a period old, on average
        err = target - (self._t + n * step)
        if err > RESYNC_PERIODS * step:
            # samples went missing: jump rather than slew (a gap), keep the learnt period
            self._t = target - n * step
            self.resyncs += 1
            err = 0.0
        lo, hi = (
            self.nominal_period * (1 - self.max_rate_error),
            self.nominal_period * (1 + self.max_rate_error),
        )
        self.period = min(hi, max(lo, self.period + self.ki * err / n))
        slew = max(-self.max_slew, min(self.max_slew, self.kp * err / (n * step)))
        batch_step = step * (1 + slew)
        times = self._t + batch_step * np.arange(1, n + 1)
        self._t = float(times[-1])
        self._last = self._t
        return times
