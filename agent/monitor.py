"""The resource monitor: psutil sampled in a thread of its own, turned into frozen snapshots.

Each sample becomes a :class:`ResourceSnapshot`, our own type: the rest of the agent never sees a
psutil object. A source this board lacks (no thermal zone, no battery, no Raspberry Pi firmware)
is ``None`` in the snapshot, never zero, so the policy cannot mistake "unknown" for "cool" or
"idle". The monitor times its own work (thread CPU time) so its cost can be reported.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

THROTTLED_SYSFS = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
"""Where Raspberry Pi kernels expose the firmware's ``get_throttled`` bits (hex text)."""
THROTTLED_GLOB = "soc*/*firmware/get_throttled"
"""Other boards (Pi 5) name the soc and firmware nodes by address: found under the platform."""


def find_throttled_sysfs(platform: Path = Path("/sys/devices/platform")) -> Path:
    if THROTTLED_SYSFS.exists():
        return THROTTLED_SYSFS
    found = sorted(platform.glob(THROTTLED_GLOB)) if platform.is_dir() else []
    return found[0] if found else THROTTLED_SYSFS


@dataclass(frozen=True)
class Throttling:
    """The Raspberry Pi firmware's ``get_throttled`` bits (bit 0-3 now, 16-19 since boot)."""

    raw: int

    @property
    def under_voltage(self) -> bool:
        return bool(self.raw & 0x1)

    @property
    def freq_capped(self) -> bool:
        return bool(self.raw & 0x2)

    @property
    def throttled(self) -> bool:
        return bool(self.raw & 0x4)

    @property
    def soft_temp_limit(self) -> bool:
        return bool(self.raw & 0x8)

    @property
    def active(self) -> bool:
        """The board is slowed right now (capped, throttled or at its soft temperature limit)."""
        return bool(self.raw & 0xE)

    @property
    def hot(self) -> bool:
        """Throttled or at the soft temperature limit now: what the thermal guard acts on.
        (Frequency capping alone also comes with under-voltage: a weak supply, not heat.)"""
        return bool(self.raw & 0xC)

    @property
    def occurred(self) -> bool:
        return bool(self.raw & 0xF0000)


@dataclass(frozen=True)
class Battery:
    percent: float
    plugged: bool | None
    seconds_left: float | None


@dataclass(frozen=True)
class ResourceSnapshot:
    """One sample of the board's resources. ``None`` means the source is absent here."""

    t: float
    """Monotonic time of the sample."""
    cpu_percent: float | None
    """System-wide CPU use since the previous sample, 0-100 (all cores)."""
    process_cpu_percent: float | None
    """This process's CPU use since the previous sample, in % of one core (can exceed 100)."""
    cpu_count: int
    load_avg: tuple[float, float, float] | None
    mem_available_mb: float | None
    cpu_freq_mhz: float | None
    cpu_freq_max_mhz: float | None
    temperature_c: float | None
    throttling: Throttling | None
    battery: Battery | None

    @property
    def others_cores(self) -> float | None:
        """CPU used by every other process, in cores (system use minus ours)."""
        if self.cpu_percent is None or self.process_cpu_percent is None:
            return None
        return max(0.0, self.cpu_percent / 100.0 * self.cpu_count - self.process_cpu_percent / 100)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (metrics topic); absent sources stay ``None`` (null). Figures are
        rounded to what they can tell (the kernel's load averages are fixed-point: 0.24853515625
        is 0.25; available memory comes in pages: 1/256 MiB); the snapshot keeps them raw."""
        return {
            "cpu_percent": self.cpu_percent,
            "process_cpu_percent": self.process_cpu_percent,
            "cpu_count": self.cpu_count,
            "load_avg": [round(x, 2) for x in self.load_avg] if self.load_avg else None,
            "mem_available_mb": (
                round(self.mem_available_mb, 1) if self.mem_available_mb is not None else None
            ),
            "cpu_freq_mhz": self.cpu_freq_mhz,
            "temperature_c": self.temperature_c,
            "throttled": hex(self.throttling.raw) if self.throttling else None,
            "battery_percent": self.battery.percent if self.battery else None,
        }


def parse_throttled(text: str) -> int:
    """``throttled=0x50005`` (vcgencmd) or ``50005`` (sysfs) -> the bit field."""
    value = text.strip().rpartition("=")[2].strip()
    return int(value, 16)


class ThrottleReader:
    """Reads the firmware's throttling bits from sysfs, else from ``vcgencmd get_throttled``.

    Absent on boards that are not Raspberry Pis: :meth:`read` then returns ``None`` every time
    without touching the disk again.
    """

    def __init__(
        self, sysfs: Path | None = None, vcgencmd: str | None = None, use_vcgencmd: bool = True
    ) -> None:
        sysfs = sysfs if sysfs is not None else find_throttled_sysfs()
        self._sysfs: Path | None = sysfs if sysfs.exists() else None
        self._vcgencmd = vcgencmd or (shutil.which("vcgencmd") if use_vcgencmd else None)
        self.available = self._sysfs is not None or self._vcgencmd is not None

    def read(self) -> Throttling | None:
        try:
            if self._sysfs is not None:
                return Throttling(parse_throttled(self._sysfs.read_text()))
            if self._vcgencmd is not None:
                out = subprocess.run(
                    [self._vcgencmd, "get_throttled"],
                    capture_output=True,
                    text=True,
                    timeout=2.0,
                    check=True,
                ).stdout
                return Throttling(parse_throttled(out))
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            log.warning("cannot read the throttling state (%s); no longer asking", exc)
            self._sysfs = self._vcgencmd = None
            self.available = False
        return None


def _temperature(psutil: ModuleType, zone: str) -> float | None:
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        temps: dict[str, list[Any]] = reader()
    except (OSError, RuntimeError):
        return None
    if zone:
        readings = [t.current for t in temps.get(zone, []) if t.current is not None]
    else:
        readings = [t.current for ts in temps.values() for t in ts if t.current is not None]
    return float(max(readings)) if readings else None


def _battery(psutil: ModuleType) -> Battery | None:
    reader = getattr(psutil, "sensors_battery", None)
    if reader is None:
        return None
    try:
        b = reader()
    except (OSError, RuntimeError):
        return None
    if b is None:
        return None
    secs = b.secsleft
    left = None if secs in (psutil.POWER_TIME_UNKNOWN, psutil.POWER_TIME_UNLIMITED) else secs
    return Battery(float(b.percent), b.power_plugged, None if left is None else float(left))


class Sampler:
    """Takes one snapshot per :meth:`sample` call. ``psutil`` is injectable for tests."""

    def __init__(
        self,
        psutil: ModuleType | None = None,
        *,
        thermal_zone: str = "",
        throttle: ThrottleReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if psutil is None:
            import psutil as real

            psutil = real
        self._ps = psutil
        self._zone = thermal_zone
        self._throttle = throttle if throttle is not None else ThrottleReader()
        self._clock = clock
        self._proc = psutil.Process(os.getpid())
        self._count = psutil.cpu_count() or 1
        self._absent: set[str] = set()
        if thermal_zone:
            self._check_zone(thermal_zone)
        # the first cpu_percent call only starts the interval: prime both counters
        self._guarded("system CPU use", lambda: psutil.cpu_percent(interval=None))
        self._guarded("this process's CPU use", lambda: self._proc.cpu_percent(interval=None))

    def _check_zone(self, zone: str) -> None:
        """A ``monitor.thermal_zone`` this machine does not have reads nothing, for ever (the
        thermal guard then never acts): say so once, with the zones there are."""
        reader = getattr(self._ps, "sensors_temperatures", None)
        try:
            zones = reader() if reader is not None else {}
        except (OSError, RuntimeError):
            zones = {}
        if zones and zone not in zones:
            log.warning(
                "monitor.thermal_zone %r is not on this machine (it has: %s); no temperature "
                "will be read and the thermal guard will not act",
                zone,
                ", ".join(sorted(zones)),
            )

    def _guarded(self, what: str, read: Callable[[], float]) -> float | None:
        """``read()``, or None when the source is not there (e.g. /proc/stat hidden by a
        sandbox); logged once when it goes, once when it comes back."""
        try:
            value = float(read())
        except (OSError, RuntimeError) as exc:
            if what not in self._absent:
                self._absent.add(what)
                log.warning("resource monitor: %s is not available (%s)", what, exc)
            return None
        if what in self._absent:
            self._absent.discard(what)
            log.info("resource monitor: %s is available again", what)
        return value

    def sample(self) -> ResourceSnapshot:
        ps = self._ps
        try:
            load: tuple[float, float, float] | None = ps.getloadavg()
        except (AttributeError, OSError):
            load = None
        try:
            freq = ps.cpu_freq()
        except (AttributeError, OSError, NotImplementedError):
            freq = None
        try:
            mem_mb: float | None = ps.virtual_memory().available / 2**20
        except OSError:
            mem_mb = None
        return ResourceSnapshot(
            t=self._clock(),
            cpu_percent=self._guarded("system CPU use", lambda: ps.cpu_percent(interval=None)),
            process_cpu_percent=self._guarded(
                "this process's CPU use", lambda: self._proc.cpu_percent(interval=None)
            ),
            cpu_count=self._count,
            load_avg=load,
            mem_available_mb=mem_mb,
            cpu_freq_mhz=float(freq.current) if freq and freq.current else None,
            cpu_freq_max_mhz=float(freq.max) if freq and freq.max else None,
            temperature_c=_temperature(ps, self._zone),
            throttling=self._throttle.read(),
            battery=_battery(ps),
        )


class ResourceMonitor:
    """Samples in a daemon thread every ``interval_s`` and hands each snapshot to ``on_sample``.

    :attr:`latest` is the newest snapshot (``None`` before the first). The thread's own CPU time
    is accumulated in :attr:`cpu_s` so the monitor's cost is measured, not guessed.
    """

    def __init__(
        self,
        sampler: Sampler,
        interval_s: float,
        on_sample: Callable[[ResourceSnapshot], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: the agent's monotonic clock (the wall time :attr:`cost_share` divides by;
        the thread's own CPU time is always the process's real one)."""
        self.sampler = sampler
        self._clock = clock
        self.interval_s = interval_s
        self.on_sample = on_sample
        self.latest: ResourceSnapshot | None = None
        self.samples = 0
        self.cpu_s = 0.0
        """Thread CPU time spent sampling and in ``on_sample`` (the policy)."""
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._stopped: float | None = None

    def tick(self) -> ResourceSnapshot | None:
        """Take one sample now (the thread's body; tests call it directly)."""
        c0 = time.thread_time()
        try:
            snap = self.sampler.sample()
        except Exception as exc:  # psutil.Error, odd /proc or /sys text: skip this tick
            if not self._failing:
                log.warning("resource monitor: a sample failed (%s); skipping it", exc)
                self._failing = True
            self.cpu_s += time.thread_time() - c0
            return self.latest
        if self._failing:
            log.info("resource monitor: sampling works again")
            self._failing = False
        self.latest = snap
        self.samples += 1
        if self.on_sample is not None:
            try:
                self.on_sample(snap)
            except Exception:  # the monitor must outlive a bug in a consumer
                log.exception("resource sample consumer failed")
        self.cpu_s += time.thread_time() - c0
        return snap

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def start(self) -> None:
        self._started = self._clock()
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="har-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._stopped = self._clock()

    @property
    def cost_share(self) -> float:
        """Monitor CPU time over wall time since start: the share of one core it used."""
        end = self._stopped if self._stopped is not None else self._clock()
        wall = end - self._started
        return self.cpu_s / wall if wall > 0 else 0.0
