"""The energy meters behind :class:`agent.energy.EnergyMeter` (chosen by :func:`open_meter`).

Sampled meters (INA219/INA260 here, the Raspberry Pi 5 PMIC in :mod:`agent.energy_pmic`) read
power in a daemon thread at a set rate and integrate it with
:class:`~agent.energy.PowerIntegrator`; a reading of the energy carries the last power on to the
moment it is asked for, so it does not lag by up to one sample period. A read that fails is logged
once when the failures start and once when readings come back; the gap is bridged by the
trapezoid between the readings either side. After ``max_failures`` failures in a row the meter
marks itself failed, stops its thread and :meth:`joules` raises :class:`MeterError`: the agent
keeps running without energy figures. RAPL counters are read on demand and polled by a daemon
thread often enough to see every wrap of the counter; the estimate needs no device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.energy import MeterKind, PowerIntegrator, wrapped_delta
from agent.errors import AgentError, MeterError
from agent.profile_tables import EnergyConfig
from agent.sensors.bus import BusFactory, I2CBus

log = logging.getLogger(__name__)

INA_SAMPLE_HZ = 20.0
"""INA219/INA260 reads per second: four register reads each, well within a 100 kHz bus."""
MAX_FAILURES = 5
RAPL_POLL_S = 1.0
"""Longest period between two polls of the RAPL counters."""
RAPL_MAX_W = 1000.0
"""A generous ceiling on a RAPL zone's power: the poll period stays under a quarter of the time
the counter takes to wrap at this power."""


class SampledMeter:
    """Reads power with ``read_watts`` every ``1 / sample_hz`` seconds and integrates it."""

    kind: MeterKind = "measured"

    def __init__(
        self,
        name: str,
        read_watts: Callable[[], float],
        *,
        sample_hz: float,
        covers: str = "whole board",
        clock: Callable[[], float] = time.monotonic,
        max_failures: int = MAX_FAILURES,
        on_close: Callable[[], None] | None = None,
        start: bool = True,
    ) -> None:
        if not sample_hz > 0:
            raise ValueError(f"sample rate must be positive, got {sample_hz}")
        self.name = name
        self.covers = covers
        self.resolution_s = 1.0 / sample_hz
        self.integrator = PowerIntegrator()
        self.failures = 0
        """Failed reads in all."""
        self._read = read_watts
        self._clock = clock
        self._max_failures = max_failures
        self._on_close = on_close
        self._in_a_row = 0
        self._failure: str | None = None
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sample_once()  # the first reading starts the integral (and shows the device works)
        if start:
            self._thread = threading.Thread(target=self._loop, name=f"meter {name}", daemon=True)
            self._thread.start()

    @property
    def failure(self) -> str | None:
        return self._failure

    def sample_once(self) -> None:
        """Take one reading now (the thread calls this; tests drive it with a fake clock)."""
        if self._failure is not None:
            return
        try:
            watts = self._read()
        except Exception as exc:  # a bug or an odd reply (vcgencmd's text): fail, never go silent
            if isinstance(exc, AgentError):
                self._read_failed(exc)
                return
            self.failures += 1
            self._failure = f"unexpected error: {type(exc).__name__}: {exc}"
            log.exception("energy meter %s failed: %s", self.name, self._failure)
            self._stop.set()
            return
        if self._in_a_row:
            log.info("energy meter %s: readings back after %d failed", self.name, self._in_a_row)
            self._in_a_row = 0
        self.integrator.add(self._clock(), watts)

    def _read_failed(self, exc: AgentError) -> None:
        """A reading failed as the device can fail (I2C, the firmware tool): bridged, until
        ``max_failures`` in a row make the meter fail."""
        self.failures += 1
        self._in_a_row += 1
        if self._in_a_row == 1:
            log.warning("energy meter %s: reading failed (%s)", self.name, exc)
        if self._in_a_row >= self._max_failures:
            self._failure = f"{self._in_a_row} readings in a row failed, the last: {exc}"
            log.error("energy meter %s failed: %s", self.name, self._failure)
            self._stop.set()

    def _loop(self) -> None:
        period = self.resolution_s
        due = time.monotonic() + period
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.sample_once()
            due += period
            if due < time.monotonic():  # fell behind (a stalled bus): do not catch up in a burst
                due = time.monotonic() + period

    def joules(self) -> float:
        """Energy up to now: the readings' integral, the last power carried on to now."""
        if self._failure is not None:
            raise MeterError(f"{self.name}: {self._failure}")
        return self.integrator.joules_at(self._clock())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self._on_close is not None:
            self._on_close()


# -- INA219 / INA260 ---------------------------------------------------------------------------


class InaMeter(SampledMeter):
    """A TI INA219/INA260 in the supply line (docs/sensors.md): whole-board power."""

    @classmethod
    def open(
        cls,
        cfg: EnergyConfig,
        chip: Literal["ina219", "ina260"],
        bus_factory: BusFactory | None = None,
        *,
        sample_hz: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> InaMeter:
        from agent.sensors.ina219 import Ina219, Ina260, PowerMonitor

        if bus_factory is None:
            from agent.sensors.bus import open_smbus

            bus_factory = open_smbus
        try:
            bus: I2CBus = bus_factory(cfg.bus)
        except OSError as exc:  # an emulated or odd factory: say it as the real one would
            raise MeterError(f"cannot open I2C bus {cfg.bus} ({exc})") from exc
        try:
            monitor: PowerMonitor
            if chip == "ina219":
                monitor = Ina219(
                    bus,
                    cfg.address,
                    bus_number=cfg.bus,
                    shunt_ohms=cfg.shunt_ohms,
                    max_current_a=cfg.max_current_a,
                )
            else:
                monitor = Ina260(bus, cfg.address, bus_number=cfg.bus)
            monitor.open()

            def read_watts() -> float:
                reading = monitor.read()
                if reading.overflow:
                    raise MeterError(
                        f"the current exceeds the {chip.upper()}'s calibrated range "
                        f"(raise energy.max_current_a above {cfg.max_current_a:g} A)"
                    )
                return reading.power_w

            return cls(
                f"{chip}:i2c-{cfg.bus}@0x{cfg.address:02x} (measured)",
                read_watts,
                sample_hz=sample_hz or INA_SAMPLE_HZ,
                clock=clock,
                on_close=bus.close,
                start=start,
            )
        except BaseException:
            bus.close()
            raise


# -- Linux powercap (RAPL) ---------------------------------------------------------------------


@dataclass
class RaplZone:
    name: str
    energy: Path
    max_range_uj: int
    last_uj: int


def _read_int(path: Path) -> int:
    return int(path.read_text(encoding="ascii").strip())


class RaplMeter:
    """Package energy counters of Linux powercap (``intel-rapl:N``; AMD uses the same driver).

    The platform zone (``psys``) is used alone when present (it covers the packages); otherwise
    the sum of the package zones. Each counter wraps after ``max_energy_range_uj`` (about 262 kJ
    on Intel, 65 kJ on AMD: hours at 15 W, minutes at a few hundred). Two readings can undo one
    wrap between them, not two, so a daemon thread polls the counters every :attr:`poll_s`
    (:func:`rapl_poll_s`: at most 1 s, well under the time to wrap) and :meth:`joules` reads
    them once more: a span of any length (a replay, a daemon's run of days) adds up.
    """

    kind: MeterKind = "measured"
    resolution_s = 0.001  # the counters update about every millisecond

    def __init__(
        self, zones: list[RaplZone], *, poll_s: float | None = None, start: bool = True
    ) -> None:
        self.zones = zones
        names = [z.name for z in zones]
        self.name = f"rapl:{'+'.join(names)} (measured)"
        self.covers = "whole platform" if names == ["psys"] else "whole package"
        self.poll_s = rapl_poll_s(zones) if poll_s is None else poll_s
        self.polls = 0
        """Reads of the counters so far (the thread's and :meth:`joules`'s)."""
        self._uj = 0
        self._lock = threading.Lock()
        self._failure: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._loop, name="meter rapl", daemon=True)
            self._thread.start()

    @property
    def failure(self) -> str | None:
        return self._failure

    @classmethod
    def open(
        cls,
        root: Path = Path("/sys/class/powercap"),
        *,
        poll_s: float | None = None,
        start: bool = True,
    ) -> RaplMeter:
        if not root.is_dir():
            raise MeterError(
                f"no RAPL: {root} does not exist (not an Intel/AMD Linux machine, or no "
                "powercap driver)"
            )
        found: list[RaplZone] = []
        for zone in sorted(root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:  # sub-zones (core, uncore, dram) lie inside a package
                continue
            energy = zone / "energy_uj"
            try:
                name = (zone / "name").read_text(encoding="ascii").strip()
                max_range = _read_int(zone / "max_energy_range_uj")
                now = _read_int(energy)
            except PermissionError as exc:
                raise MeterError(
                    f"RAPL counters are readable by root only here ({energy}: permission "
                    "denied); run as root or grant read access to energy_uj"
                ) from exc
            except (OSError, ValueError) as exc:
                raise MeterError(f"cannot read the RAPL zone {zone} ({exc})") from exc
            found.append(RaplZone(name, energy, max_range, now))
        psys = [z for z in found if z.name == "psys"]
        zones = psys or [z for z in found if z.name.startswith("package")]
        if not zones:
            raise MeterError(f"no RAPL package zones under {root}")
        return cls(zones, poll_s=poll_s, start=start)

    def poll(self) -> float:
        """Read the counters now and add what they gained; the joules since opening."""
        with self._lock:
            if self._failure is not None:
                raise MeterError(f"{self.name}: {self._failure}")
            for z in self.zones:
                try:
                    now = _read_int(z.energy)
                except (OSError, ValueError) as exc:
                    # said once, when it happens (under the lock: the thread or a reader)
                    self._failure = f"cannot read {z.energy} ({exc})"
                    log.error("energy meter %s failed: %s", self.name, self._failure)
                    self._stop.set()
                    raise MeterError(f"{self.name}: {self._failure}") from exc
                self._uj += wrapped_delta(z.last_uj, now, z.max_range_uj)
                z.last_uj = now
            self.polls += 1
            return self._uj / 1e6

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except MeterError:
                return  # joules() raises from now on (the failure was logged)

    def joules(self) -> float:
        return self.poll()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


def rapl_poll_s(zones: list[RaplZone]) -> float:
    """Seconds between polls: a quarter of the time the smallest counter takes to wrap at
    ``RAPL_MAX_W``, at most ``RAPL_POLL_S`` (and at least 10 ms)."""
    wrap_s = min(z.max_range_uj for z in zones) / 1e6 / RAPL_MAX_W
    return max(0.01, min(RAPL_POLL_S, wrap_s / 4))


# -- the estimate --------------------------------------------------------------------------------


class CpuEstimateMeter:
    """``core_w`` x this process's CPU seconds (every thread: ONNX Runtime's included).

    The incremental energy of the work this process does, on the profile's figure for one busy
    core. Not included: the board's idle power (``idle_w``, reported beside it), other processes,
    memory and I/O, and the effect of the CPU frequency on the power of a core.
    """

    kind: MeterKind = "estimated"
    covers = "this process's CPU work"

    def __init__(
        self,
        core_w: float,
        idle_w: float = 0.0,
        cpu_time: Callable[[], float] | None = None,
    ) -> None:
        self.core_w = core_w
        self.idle_w = idle_w
        self._cpu = cpu_time or time.process_time
        self.resolution_s = (
            time.get_clock_info("process_time").resolution if cpu_time is None else 0.0
        )
        self.name = f"estimate:{core_w:g} W/core x process CPU time (estimated)"
        self._start = self._cpu()

    @property
    def failure(self) -> str | None:
        return None

    def cpu_seconds(self) -> float:
        return self._cpu() - self._start

    def joules(self) -> float:
        return self.core_w * max(0.0, self.cpu_seconds())

    def close(self) -> None:
        pass
