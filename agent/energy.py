"""Energy meters: one protocol, the integration arithmetic, and the factory that picks a meter.

A meter answers one question: how many joules since it was opened (:meth:`EnergyMeter.joules`,
cumulative and monotonic). Joules for a span of work (a window, a benchmark loop) are the
difference of two readings; :class:`EnergyCounter` does that and turns a failed meter into
``None``. Every meter names itself and says whether its figure is ``measured`` or ``estimated``.

Meters, best available first (implementations in :mod:`agent.energy_meters`):

    ina219 / ina260   a TI power monitor on I2C in the board's supply: whole-board power, sampled
                      in a thread and integrated (trapezoid rule)                       measured
    rapl              Linux powercap (Intel/AMD RAPL) package energy counters           measured
    pmic              Raspberry Pi 5 PMIC rails (``vcgencmd pmic_read_adc``), sampled   measured
    estimate          the profile's ``core_w`` x this process's CPU seconds             estimated

What each figure covers differs: a supply-side INA sees the whole board (idle power included);
RAPL sees the CPU package (every process on it); the PMIC sees its own rails (not its conversion
losses, nor the 5 V loads: USB, HATs, fan); the estimate sees only the work of this process
(``core_w`` per busy core, no idle power, no memory or I/O, no frequency scaling).

``meter = "auto"`` tries an INA260 (identified by its ID registers: reads only) at the configured
address when the I2C bus exists, then RAPL, then the PMIC, then the estimate. It never tries an
INA219: that chip has no identification register, and configuring it means writing to whatever
answers at the address; name ``ina219`` in the profile to use one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from agent.errors import AgentError, MeterError
from agent.profile_tables import EnergyConfig
from agent.sensors.bus import BusFactory

log = logging.getLogger(__name__)

MeterKind = Literal["measured", "estimated"]

POWERCAP_ROOT = Path("/sys/class/powercap")


class EnergyMeter(Protocol):
    name: str
    """What is measured and how, e.g. ``rapl:package-0 (measured)``."""
    kind: MeterKind
    resolution_s: float
    """Shortest span worth reading: spans under ~10x this are dominated by sampling error."""

    def joules(self) -> float:
        """Energy since the meter was opened (monotonic). Raises :class:`MeterError` once the
        meter has failed."""

    @property
    def failure(self) -> str | None:
        """Why the meter failed (it reports no more energy), or None while it works."""

    def close(self) -> None:
        """Stop sampling and release the device."""


class PowerIntegrator:
    """Energy from power samples by the trapezoid rule (pure arithmetic; thread-safe).

    Between two samples the power is taken to change linearly. Before the first sample there is
    no energy; after the last one nothing is extrapolated, so a reading lags by at most one
    sample period.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t: float | None = None
        self._t0: float | None = None
        self._p = 0.0
        self._j = 0.0
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


class EnergyCounter:
    """Joules per span of work from a meter: :meth:`lap` returns the energy since the last lap.

    A failed meter gives ``None`` (logged once) instead of raising, so the hot path can call
    ``lap()`` after every window without guarding it.
    """

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self._last: float | None = None
        self._failed_logged = False
        self._last = self._read()

    def _read(self) -> float | None:
        try:
            return self.meter.joules()
        except MeterError as exc:
            if not self._failed_logged:
                log.warning("energy meter %s stopped: %s", self.meter.name, exc)
                self._failed_logged = True
            return None

    def lap(self) -> float | None:
        """Joules since the previous lap (or since construction); None when the meter failed."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None:
            return None
        return max(0.0, now - last)


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
