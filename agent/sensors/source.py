"""The live sensor as a :class:`~agent.sources.Source`: FIFO reads, sample times, faults, gaps.

:class:`SensorSource` polls an :class:`~agent.sensors.imu.ImuDriver` a few times per FIFO fill,
timestamps the samples (:class:`~agent.sensors.timebase.SampleTimer`), turns them into the model's
frame (``sensor.axes``) and yields them as chunks, times in seconds since the source was opened.

Faults never end the stream once it runs (the daemon keeps going; :attr:`SensorSource.health` says
what is wrong and the pipeline publishes it):

- a failed transfer is retried with exponential backoff; after ``sensor.retries`` failures in a row
  the fault ``i2c_error`` starts and the chip is re-initialised (the bus handle opened again, in
  case the adapter itself went away; then reset, configure, FIFO restart), again with backoff,
  until it answers; a chip that does not answer is ``chip_missing``;
- a FIFO overflow resets the FIFO (the driver does) and restarts the sample clock: a gap, so no
  window spans it (``fifo_overflow``);
- a run of ``sensor.stuck_after_s`` identical samples is ``stuck``; those samples are dropped (no
  predictions from a dead sensor) until the values move again, which leaves a gap too.

While nothing arrives the source still yields empty chunks every poll, so the pipeline keeps
answering commands and publishing the health. A chip that is missing when the source is *opened*
is a user error instead: :class:`~agent.errors.SensorNotFoundError`, one line.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from agent.clock import Clock
from agent.errors import ConfigError, SensorNotFoundError, SourceError
from agent.payload import iso_from_unix
from agent.profile_tables import SensorConfig
from agent.recording import Chunk
from agent.recording_header import RecordingHeader
from agent.sensors import lsm6dsox, mpu6050
from agent.sensors.bus import BusFactory, I2CBus, ReopeningBus
from agent.sensors.convert import IMU_CHANNELS, remap, with_full_scale
from agent.sensors.health import SensorHealth, StuckDetector
from agent.sensors.imu import FifoBatch, ImuDriver, ImuInfo, ImuSettings, Sleep
from agent.sensors.timebase import SampleTimer

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.05
RETRY_MAX_S = 1.0
POLLS_PER_FIFO = 3
"""Poll at least this often per FIFO fill, whatever ``source.chunk_samples`` says."""

DriverFactory = Callable[[I2CBus, ImuSettings, Sleep], ImuDriver]


def _mpu(bus: I2CBus, s: ImuSettings, sleep: Sleep) -> ImuDriver:
    return mpu6050.Mpu6050Driver(bus, s, sleep=sleep)


def _lsm(bus: I2CBus, s: ImuSettings, sleep: Sleep) -> ImuDriver:
    return lsm6dsox.Lsm6dsoxDriver(bus, s, sleep=sleep)


DRIVERS: dict[str, DriverFactory] = {
    "mpu6050": _mpu,
    "mpu6500": _mpu,
    "mpu9250": _mpu,
    "lsm6dsox": _lsm,
    "lsm6dso32": _lsm,
}
PLANS: dict[str, Callable[[ImuSettings], Any]] = {
    "mpu6050": lambda s: mpu6050.plan(mpu6050.MPU6050, s),
    "mpu6500": lambda s: mpu6050.plan(mpu6050.MPU6500, s),
    "mpu9250": lambda s: mpu6050.plan(mpu6050.MPU9250, s),
    "lsm6dsox": lsm6dsox.plan,
    "lsm6dso32": lsm6dsox.plan,
}


def imu_settings(config: SensorConfig, where: str = "") -> ImuSettings:
    """The chip settings of a profile's ``[sensor]``; ConfigError if the chip cannot do them
    (after ``where``, the profile's file, when given)."""
    settings = ImuSettings(
        chip=config.chip,
        bus=config.bus,
        address=config.address,
        rate_hz=config.rate_hz,
        accel_range_g=config.accel_range_g,
        gyro_range_dps=config.gyro_range_dps,
        dlpf_hz=config.dlpf_hz,
    )
    try:
        PLANS[config.chip](settings)
    except ConfigError as exc:
        if not where:
            raise
        raise ConfigError(f"{where}: {exc}") from None
    return settings


def backoff_s(failures: int) -> float:
    # the exponent is capped before the power: 2 ** 1024 does not fit a float, and a sensor that
    # stays away for ~17 minutes reaches that many failures
    return float(min(RETRY_MAX_S, RETRY_BASE_S * 2.0 ** min(max(0, failures - 1), 30)))


def _empty() -> Chunk:
    return Chunk(np.zeros(0), np.zeros((0, len(IMU_CHANNELS))))


class SensorSource:
    """Samples from a live IMU; see the module docstring for the fault handling."""

    def __init__(
        self,
        driver: ImuDriver,
        config: SensorConfig,
        *,
        clock: Clock,
        stop: threading.Event,
        chunk_samples: int = 10,
        on_close: Callable[[], None] | None = None,
        reopen_bus: Callable[[], None] | None = None,
    ) -> None:
        self.driver = driver
        self._reopen_bus = reopen_bus
        self.config = config
        self._clock = clock
        self._stop = stop
        self._on_close = on_close
        self.info: ImuInfo = self._first_open()  # no chip, wrong chip: fail before we start
        info = self.info
        self.name = f"{info.chip} on I2C bus {config.bus} at 0x{config.address:02x}"
        self.health = SensorHealth(self.name, clock.wall)
        fifo_s = info.fifo_samples / info.rate_hz
        self.poll_s = min(chunk_samples / info.rate_hz, fifo_s / POLLS_PER_FIFO)
        self.timer = SampleTimer(info.rate_hz)
        self.stuck = StuckDetector(max(2, round(config.stuck_after_s * info.rate_hz)))
        self._t0 = clock.monotonic()
        self.header = RecordingHeader(
            sample_rate_hz=info.rate_hz,
            channels=with_full_scale(
                info.accel_limit_g or info.accel_range_g, info.gyro_limit_dps or info.gyro_range_dps
            ),
            start_time=iso_from_unix(clock.wall()),
            source={"sensor": info.chip, "bus": config.bus, "address": f"0x{config.address:02x}"},
            meta={
                "who_am_i": f"0x{info.who_am_i:02x}",
                "accel_range_g": info.accel_range_g,
                "gyro_range_dps": info.gyro_range_dps,
                "filter_hz": info.bandwidth_hz,
                "axes": list(config.axes),
            },
        )
        self.samples = 0
        self.gaps = 0
        self._failures = 0
        self._reopen = False
        log.info(
            "%s: %g Hz, +-%d g, +-%d deg/s, low-pass %g Hz, FIFO %d samples (%.1f s), poll %.2f s",
            self.name,
            info.rate_hz,
            info.accel_range_g,
            info.gyro_range_dps,
            info.bandwidth_hz,
            info.fifo_samples,
            fifo_s,
            self.poll_s,
        )
        if info.bandwidth_hz > info.rate_hz / 2:
            log.warning(
                "%s: low-pass %g Hz is not below half the %g Hz rate: motion above %g Hz aliases",
                self.name,
                info.bandwidth_hz,
                info.rate_hz,
                info.rate_hz / 2,
            )

    def _first_open(self) -> ImuInfo:
        """Open the chip; a transfer error is retried like later ones, a missing chip is not."""
        for attempt in range(1, self.config.retries + 2):
            try:
                return self.driver.open()
            except SensorNotFoundError:
                raise
            except SourceError:
                if attempt > self.config.retries:
                    raise
                self._clock.sleep_until(self._clock.monotonic() + backoff_s(attempt), self._stop)
        raise AssertionError("unreachable")

    def chunks(self) -> Generator[Chunk, None, None]:
        clock = self._clock
        try:
            wait = self.poll_s
            try:
                self.driver.reset_fifo()  # drop what piled up while the agent was starting
            except SourceError as exc:
                wait = self._failed(exc)
            self.timer.restart(clock.monotonic())
            deadline = clock.monotonic() + wait
            while clock.sleep_until(deadline, self._stop):
                now = clock.monotonic()
                chunk, wait = self._poll(now)
                deadline = max(deadline + self.poll_s, now) if wait == self.poll_s else now + wait
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Close the bus and give up the claim on the chip; once, however often called (the
        agent calls it, and so does :meth:`chunks` when it ends)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def _mark_gap(self, now: float) -> None:
        """The stream restarts at ``now`` (FIFO reset, overflow, re-initialisation): a gap."""
        self.timer.restart(now)
        self.stuck.reset()
        self._count_gap()

    def _count_gap(self) -> None:
        self.gaps += 1
        self.health.count("gaps")

    def _failed(self, exc: SourceError) -> float:
        """Count a failure; after ``retries`` in a row, re-initialise. Returns the backoff."""
        self._failures += 1
        if isinstance(exc, SensorNotFoundError):
            self.health.fault("chip_missing", str(exc))
        else:
            self.health.count("i2c_errors")
            if self._failures > self.config.retries:
                self.health.fault("i2c_error", str(exc))
            else:
                log.debug("%s: transfer failed (%d in a row): %s", self.name, self._failures, exc)
        if self._failures > self.config.retries:
            self._reopen = True
        return backoff_s(self._failures)

    def _poll(self, now: float) -> tuple[Chunk, float]:
        try:
            if self._reopen:
                if self._reopen_bus is not None:  # a fresh handle, in case the adapter went away
                    self._reopen_bus()
                self.driver.open()
                self.health.count("reinits")
                self.health.clear("chip_missing")
                self._reopen = False
                self._failures = 0  # a fresh chip gets its full retries again
                self._mark_gap(self._clock.monotonic())
                return _empty(), self.poll_s
            batch = self.driver.read()
        except SourceError as exc:
            return _empty(), self._failed(exc)
        self._failures = 0
        self.health.clear("i2c_error")
        return self._take(batch, now), self.poll_s

    def _take(self, batch: FifoBatch, now: float) -> Chunk:
        if batch.resync:  # a read failed inside the FIFO; the driver realigned it (lost samples)
            self.health.count("fifo_resyncs")
            self._mark_gap(now)
            return _empty()
        if batch.overflow:
            self.health.count("overflows")
            self.health.fault(
                "fifo_overflow",
                f"the FIFO holds {self.info.fifo_samples} samples; the agent fell behind",
            )
            self._mark_gap(now)
            return _empty()
        if not len(batch):
            return _empty()
        self.health.clear("fifo_overflow")
        resyncs = self.timer.resyncs
        t = self.timer.stamp(len(batch), now) - self._t0
        if self.timer.resyncs != resyncs:  # samples went missing: the times jump, a gap
            self._count_gap()
        values = remap(batch.values, self.config.axes)
        was_stuck = self.stuck.stuck
        stuck = self.stuck.update(values)
        if stuck.any() and not was_stuck:  # the dropped stretch leaves a gap in time
            self._count_gap()
        if stuck.any():
            self.health.count("stuck_samples", int(stuck.sum()))
            self.health.fault(
                "stuck",
                f"{self.stuck.limit} or more identical samples in a row "
                f"({self.config.stuck_after_s:g} s)",
            )
            t, values = t[~stuck], values[~stuck]
        if not self.stuck.stuck:
            self.health.clear("stuck")
        self.samples += len(t)
        return Chunk(t, values)


def open_sensor_source(
    config: SensorConfig,
    *,
    clock: Clock,
    stop: threading.Event,
    chunk_samples: int = 10,
    bus_factory: BusFactory | None = None,
    where: str = "",
) -> SensorSource:
    """Open the profile's sensor on a real bus (or the one ``bus_factory`` opens, in tests);
    ``where``, the profile's file, heads an error in the settings."""
    settings = imu_settings(config, where)  # bad settings fail before the bus is touched
    held = None
    if bus_factory is None:
        from agent.sensors.bus import open_smbus

        held = _claim_sensor(config)
        bus_factory = open_smbus
    try:
        bus = ReopeningBus(bus_factory, config.bus)
    except BaseException:
        if held is not None:
            held.close()
        raise

    def sleep(seconds: float) -> None:
        clock.sleep_until(clock.monotonic() + seconds, stop)

    def close() -> None:
        bus.close()
        if held is not None:
            held.close()

    try:
        driver = DRIVERS[config.chip](bus, settings, sleep)
        return SensorSource(
            driver,
            config,
            clock=clock,
            stop=stop,
            chunk_samples=chunk_samples,
            on_close=close,
            reopen_bus=bus.reopen,
        )
    except BaseException:
        close()
        raise


def _claim_sensor(config: SensorConfig) -> socket.socket | None:
    """One process at a time reads a chip: two readers of one FIFO would each get part of the
    samples (the daemon, and a ``record`` started beside it). Held until the source closes."""
    from agent.instance import NameInUse, claim

    where = f"I2C bus {config.bus}, address 0x{config.address:02x}"
    try:
        return claim(f"i2c/{config.bus}/0x{config.address:02x}")
    except NameInUse:
        raise SourceError(
            f"another har-agent process is reading the sensor on {where} (the service, or a "
            "record?); stop it first: two readers would split its samples between them"
        ) from None
