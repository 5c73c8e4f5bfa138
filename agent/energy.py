"""Energy meters: one protocol, the integration arithmetic, and the factory that picks a meter.

A meter answers one question: how many joules since it was opened (:meth:`EnergyMeter.joules`,
cumulative and monotonic). Joules for a span of work (a replay, a metrics interval) are the
difference of two readings; :meth:`EnergyCounter.span` takes it and returns an
:class:`EnergySpan`: the joules, the seconds, the average watts, what the figure covers, whether
it includes the board's idle power, and why no figure is reported (a span shorter than ten of the
meter's readings, a failed meter). Every meter names itself and says whether its figure is
``measured`` or ``estimated``.

Meters, best available first (implementations in :mod:`agent.energy_meters`):

    ina219 / ina260   a TI power monitor on I2C in the board's supply: whole-board power, sampled
                      in a thread and integrated (trapezoid rule)                       measured
    rapl              Linux powercap (Intel/AMD RAPL) package energy counters           measured
    pmic              Raspberry Pi 5 PMIC rails (``vcgencmd pmic_read_adc``), sampled   measured
    estimate          the profile's ``core_w`` x this process's CPU seconds             estimated

What each figure covers differs (:attr:`EnergyMeter.covers`): a supply-side INA sees the whole
board; RAPL sees the CPU package (every process on it); the PMIC sees its own rails (not its
conversion losses, nor the 5 V loads: USB, HATs, fan). All three include the idle power, so their
joules per window are the board's (package's) power x the wall time per window and depend on how
fast windows come (a ``--fast`` replay against a real-time one). The estimate sees only the work of
this process (``core_w`` per busy core, no idle power, no memory or I/O, no frequency scaling).

``meter = "auto"`` tries an INA260 (identified by its ID registers: reads only) at the configured
address when the I2C bus exists, then RAPL, then the PMIC, then the estimate. It never tries an
INA219: that chip has no identification register, and configuring it means writing to whatever
answers at the address; name ``ina219`` in the profile to use one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from agent.errors import AgentError, MeterError
from agent.profile_tables import EnergyConfig
from agent.sensors.bus import BusFactory

log = logging.getLogger(__name__)

MeterKind = Literal["measured", "estimated"]

POWERCAP_ROOT = Path("/sys/class/powercap")

MIN_READINGS = 10
"""A span shorter than this many of the meter's readings (``resolution_s``) reports no figure:
sampling error dominates it."""


class EnergyMeter(Protocol):
    name: str
    """What is measured and how, e.g. ``rapl:package-0 (measured)``."""
    kind: MeterKind
    resolution_s: float
    """Seconds between readings: spans under ``MIN_READINGS`` x this report no figure."""
    covers: str
    """What the figure covers, briefly: ``whole board``, ``whole package``, ``PMIC rails``,
    ``this process's CPU work``. Measured meters include the idle power in it."""

    def joules(self) -> float:
        """Energy since the meter was opened (monotonic). Raises :class:`MeterError` once the
        meter has failed."""

    @property
    def failure(self) -> str | None:
        """Why the meter failed (it reports no more energy), or None while it works. A meter
        logs its failure itself, once, when it happens (readers of it do not)."""

    def close(self) -> None:
        """Stop sampling and release the device."""


class PowerIntegrator:
    """Energy from power samples by the trapezoid rule (pure arithmetic; thread-safe).

    Between two samples the power is taken to change linearly. Before the first sample there is
    no energy. :attr:`joules` stops at the last sample (it lags by up to one sample period);
    :meth:`joules_at` carries the last power on to a later time, so a span's two ends are read
    at the times they were asked for (the error is the power's change since the last sample, x
    at most one period, at each end) and never reports less than it did before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t: float | None = None
        self._t0: float | None = None
        self._p = 0.0
        self._j = 0.0
        self._floor = 0.0
        self.samples = 0

    def add(self, t: float, watts: float) -> None:
        """A power sample ``watts`` taken at time ``t`` (seconds, non-decreasing)."""
        with self._lock:
            if self._t is not None:
                dt = t - self._t
                if dt < 0:
                    raise ValueError(f"power samples went back in time ({self._t} -> {t})")
                self._j += 0.5 * (self._p + watts) * dt
            else:
                self._t0 = t
            self._t, self._p = t, watts
            self.samples += 1

    @property
    def joules(self) -> float:
        with self._lock:
            return self._j

    def joules_at(self, t: float) -> float:
        """Energy up to time ``t``: the integral to the last sample plus the last power held
        from then to ``t`` (not below any figure this method gave before)."""
        with self._lock:
            j = self._j
            if self._t is not None and t > self._t:
                j += self._p * (t - self._t)
            self._floor = max(self._floor, j)
            return self._floor

    @property
    def span_s(self) -> float:
        """Time from the first sample to the last (the span the energy covers)."""
        with self._lock:
            return 0.0 if self._t is None or self._t0 is None else self._t - self._t0

    @property
    def last_watts(self) -> float | None:
        with self._lock:
            return self._p if self._t is not None else None


def wrapped_delta(previous: int, current: int, max_range: int) -> int:
    """Increase of a counter that wraps to 0 after ``max_range`` (RAPL's ``energy_uj``)."""
    if current >= previous:
        return current - previous
    return current + max_range - previous


@dataclass(frozen=True)
class EnergySpan:
    """The energy of one span of work, as :meth:`EnergyCounter.span` measured it.

    ``joules`` is the meter's difference over the span (None when the meter failed); running
    totals add it up whatever the span's length. The figures for people (:attr:`watts`,
    :meth:`per`, :meth:`summary`) are None, with :meth:`why`, when the span is shorter than
    ``MIN_READINGS`` readings of the meter or the meter failed.
    """

    meter: str
    kind: MeterKind
    covers: str
    includes_idle: bool
    """Measured meters: yes (the whole board/package/rails, every process, idle power);
    the estimate: no (this process's CPU work only)."""
    resolution_s: float
    seconds: float
    joules: float | None
    failure: str | None = None

    def why(self, span: str = "span") -> str | None:
        """Why no figure is reported (``span`` names the span: ``run``, ``interval``), or None."""
        if self.joules is None:
            return f"the meter {self.meter} failed ({self.failure or 'no reading'})"
        needed = MIN_READINGS * self.resolution_s
        if self.seconds < needed:
            return (
                f"the {span} ({self.seconds:.1f} s) is too short for {bare_name(self.meter)} "
                f"(one reading every {self.resolution_s:g} s; it needs {needed:g} s)"
            )
        return None

    @property
    def reason(self) -> str | None:
        return self.why()

    @property
    def watts(self) -> float | None:
        """Average power over the span."""
        if self.joules is None or self.why() is not None or self.seconds <= 0:
            return None
        return self.joules / self.seconds

    def per(self, count: int) -> float | None:
        """Joules per item (window) over the span; None without items or without a figure."""
        if self.joules is None or self.why() is not None or count <= 0:
            return None
        return self.joules / count

    def summary(self, count: int, item: str = "window", span: str = "run") -> str:
        """One line for people: ``107.4 mJ per window, whole package incl. idle: 5.00 W average
        over 2.3 s (measured by rapl:package-0)``, or ``not reported: the run (1.0 s) is too
        short for pmic:rails (...)``."""
        why = self.why(span)
        if why is not None:
            return f"not reported: {why}"
        scope = f"{self.covers} incl. idle" if self.includes_idle else f"{self.covers}, no idle"
        how = f"({self.kind} by {bare_name(self.meter)})"
        watts = self.watts or 0.0
        average = f"{watts:.2f} W average over {self.seconds:.1f} s"
        per = self.per(count)
        if per is None:
            return f"{scope}: {average}, no {item}s {how}"
        mj = 1e3 * per
        figure = f"{mj:.1f}" if mj >= 100 else f"{mj:.3g}"
        return f"{figure} mJ per {item}, {scope}: {average} {how}"


def bare_name(name: str) -> str:
    """A meter's name without its ``(measured)``/``(estimated)`` suffix."""
    for suffix in (" (measured)", " (estimated)"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class EnergyCounter:
    """The energy of successive spans of work from one meter: :meth:`span` measures the span
    since the previous call (or since construction).

    A failed meter gives a span without joules (and the reason) instead of raising, so callers
    need no guard; the meter itself logs its failure once, when it happens. ``clock`` times
    the spans (the meter's own clock in tests).
    """

    def __init__(self, meter: EnergyMeter, clock: Callable[[], float] = time.monotonic) -> None:
        self.meter = meter
        self._clock = clock
        self._failure: str | None = None
        self._t = clock()
        self._last = self._read()

    def _read(self) -> float | None:
        try:
            return self.meter.joules()
        except MeterError as exc:  # the meter logged its failure when it happened
            self._failure = str(exc)
            return None

    def span(self) -> EnergySpan:
        """The energy since the previous span (or since construction)."""
        t = self._clock()
        now = self._read()
        last, self._last = self._last, now
        seconds, self._t = max(0.0, t - self._t), t
        joules = None if now is None or last is None else max(0.0, now - last)
        m = self.meter
        return EnergySpan(
            meter=m.name,
            kind=m.kind,
            covers=m.covers,
            includes_idle=m.kind == "measured",
            resolution_s=m.resolution_s,
            seconds=seconds,
            joules=joules,
            failure=(m.failure or self._failure) if joules is None else None,
        )

    def lap(self) -> float | None:
        """Joules since the previous lap or span; None when the meter failed (:meth:`span`
        without the figures for people)."""
        return self.span().joules


def open_meter(
    cfg: EnergyConfig,
    *,
    bus_factory: BusFactory | None = None,
    powercap_root: Path = POWERCAP_ROOT,
    vcgencmd: Callable[[], str] | None = None,
    cpu_time: Callable[[], float] | None = None,
    sample_hz: float | None = None,
    notes: list[str] | None = None,
) -> EnergyMeter | None:
    """The meter the profile's ``[energy]`` table asks for; None for ``meter = "none"``.

    A named meter that cannot be opened is a :class:`AgentError` (one clear line). ``auto``
    falls through to the next meter, appends why each was skipped to ``notes`` and logs one
    INFO line: the meter chosen and the short reasons (:func:`chosen_line`; in full at DEBUG). The
    keyword arguments stand in for the hardware in tests: ``bus_factory`` opens the I2C bus
    (default: smbus2 when ``/dev/i2c-<bus>`` exists), ``powercap_root`` replaces
    ``/sys/class/powercap``, ``vcgencmd`` returns ``vcgencmd pmic_read_adc``'s output and
    ``cpu_time`` returns this process's CPU seconds.
    """
    from agent import energy_meters as m
    from agent import energy_pmic

    kind = cfg.meter
    if kind == "none":
        return None
    if kind in ("ina219", "ina260"):
        return m.InaMeter.open(cfg, kind, bus_factory, sample_hz=sample_hz)
    if kind == "rapl":
        return m.RaplMeter.open(powercap_root)
    if kind == "pmic":
        return energy_pmic.PmicMeter.open(vcgencmd, sample_hz=sample_hz)
    if kind == "estimate":
        return m.CpuEstimateMeter(cfg.core_w, cfg.idle_w, cpu_time)
    skipped: list[str] = []
    attempts: list[tuple[str, Callable[[], EnergyMeter]]] = [
        ("rapl", lambda: m.RaplMeter.open(powercap_root)),
        ("pmic", lambda: energy_pmic.PmicMeter.open(vcgencmd, sample_hz=sample_hz)),
    ]
    if bus_factory is not None or Path(f"/dev/i2c-{cfg.bus}").exists():
        attempts.insert(
            0, ("ina260", lambda: m.InaMeter.open(cfg, "ina260", bus_factory, sample_hz=sample_hz))
        )
    else:
        skipped.append(f"ina260: no I2C bus {cfg.bus} (/dev/i2c-{cfg.bus} does not exist)")
    chosen: EnergyMeter | None = None
    for name, attempt in attempts:
        try:
            chosen = attempt()
            break
        except AgentError as exc:
            skipped.append(f"{name}: {exc}")
    meter = chosen if chosen is not None else m.CpuEstimateMeter(cfg.core_w, cfg.idle_w, cpu_time)
    if notes is not None:
        notes.extend(skipped)
    for line in skipped:
        log.debug("energy meter skipped: %s", line)
    log.info("energy meter: %s", chosen_line(meter.name, skipped))
    return meter


def chosen_line(name: str, skipped: list[str]) -> str:
    """The meter ``auto`` chose and, briefly, why the better ones were skipped (one log line;
    the full reasons are logged at DEBUG and kept in ``notes``): ``estimate:... (estimated);
    skipped ina260 (no I2C bus 1), rapl (no RAPL: ...)``."""
    if not skipped:
        return name
    brief = []
    for line in skipped:
        meter, _, why = line.partition(": ")
        cut = min((i for i in (why.find(" ("), why.find("; ")) if i > 0), default=len(why))
        brief.append(f"{meter} ({why[:cut]})")
    return f"{name}; skipped {', '.join(brief)}"
