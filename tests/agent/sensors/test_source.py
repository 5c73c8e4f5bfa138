"""SensorSource over the emulated chips: timing, the remap, and every fault the daemon survives."""

import errno
import logging
import subprocess
import sys

import numpy as np
import pytest

from agent.errors import ConfigError, SensorNotFoundError, SourceError
from agent.recording import Chunk
from agent.sensors.source import SensorSource, open_sensor_source
from agent.windowing import Windower, WindowSpec
from tests.agent.helpers import needs_no_i2c_bus_1
from tests.agent.sensors.rigs import ROOT, Rig, make_rig

PERIOD = 0.02
HALF_LSB = (0.5 / 8192,) * 3 + (np.radians(0.5 / 65.5),) * 3


class Run:
    """Drives a source's chunk generator on the rig's fake clock."""

    def __init__(self, rig: Rig, source: SensorSource) -> None:
        self.rig, self.source = rig, source
        self.gen = source.chunks()
        self.chunks: list[Chunk] = []

    def for_(self, seconds: float, stall_s: float = 0.0) -> "Run":
        end = self.rig.clock.monotonic() + seconds
        while self.rig.clock.monotonic() < end:
            self.chunks.append(next(self.gen))
            self.rig.clock.advance(stall_s)  # the consumer is busy elsewhere
        return self

    @property
    def t(self) -> np.ndarray:
        return np.concatenate([c.t for c in self.chunks])

    @property
    def values(self) -> np.ndarray:
        return np.concatenate([c.values for c in self.chunks])

    def gaps(self) -> list[float]:
        d = np.diff(self.t)
        return d[d > 1.5 * PERIOD].tolist()


def test_streams_the_recording_in_time_and_units() -> None:
    rig = make_rig("mpu6050")
    source = rig.source()
    h = source.header
    assert h.sample_rate_hz == 50.0
    assert h.channel_names == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert [c.unit for c in h.channels] == ["g"] * 3 + ["rad/s"] * 3
    assert h.source == {"sensor": "MPU-6050", "bus": 1, "address": "0x68"}
    assert h.start_time.endswith("Z") and h.meta["filter_hz"] == 20.0
    run = Run(rig, source).for_(60.0)
    t, v = run.t, run.values
    assert 2985 <= len(t) <= 3000
    assert np.all(np.diff(t) > 0.019) and np.all(np.diff(t) < 0.021)
    rows = rig.chip.feed.values[: len(v)]
    assert np.all(np.abs(v - rows) <= np.array(HALF_LSB) * 1.0001)  # exact up to quantisation
    assert source.health.state == "ok" and source.gaps == 0


def test_axes_remap_applies() -> None:
    rig = make_rig("mpu6050", axes=("-y", "x", "z"))
    v = Run(rig, rig.source()).for_(2.0).values
    rows = rig.chip.feed.values[: len(v)]
    assert np.allclose(v[:, 0], -rows[:, 1], atol=1e-4)
    assert np.allclose(v[:, 4], rows[:, 3], atol=3e-4)


def test_short_error_burst_is_retried_without_a_gap(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig("mpu6050")
    source = rig.source()
    with caplog.at_level(logging.WARNING):
        run = Run(rig, source).for_(10.0)
        rig.bus.fail(2, errno.EIO)
        run.for_(10.0)
    assert run.gaps() == []
    assert source.health.counters["i2c_errors"] == 2 and source.health.counters["reinits"] == 0
    assert source.health.version == 1  # never degraded
    assert not caplog.records


def test_long_error_burst_reinitialises_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig("mpu6050")
    source = rig.source()
    with caplog.at_level(logging.INFO, logger="agent.sensors.health"):
        run = Run(rig, source).for_(10.0)
        rig.bus.fail(12, errno.ETIMEDOUT)
        run.for_(20.0)
    c = source.health.counters
    assert c["i2c_errors"] == 12 and c["reinits"] == 1 and source.gaps == 1
    assert source.health.state == "ok"
    assert len(run.gaps()) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # once when it started, once when it cleared
    assert "ETIMEDOUT" in messages[0] and "cleared" in messages[1]
    t = run.t
    assert np.sum(t > t[-1] - 5.0) >= 249  # and the stream goes on at full rate


def test_chip_unplugged_then_back(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig("mpu6050")
    source = rig.source()
    run = Run(rig, source).for_(5.0)
    chip = rig.bus.detach(0x68)
    n_before = len(run.t)
    run.for_(10.0)
    assert len(run.t) == n_before  # nothing from a missing chip
    assert len(run.chunks) > 25  # but the stream kept ticking (empty chunks, 1 s backoff)
    assert set(source.health.faults) == {"i2c_error", "chip_missing"}
    assert "no chip answers at address 0x68" in source.health.payload().decode()
    rig.bus.attach(0x68, chip)
    run.for_(5.0)
    assert source.health.state == "ok" and len(run.t) > n_before + 200
    assert len(run.gaps()) == 1 and run.gaps()[0] > 9.0


def test_adapter_gone_then_back_reopens_the_bus() -> None:
    """The I2C adapter itself disappears (its handle fails with ENODEV, /dev/i2c-1 cannot be
    opened) and comes back: only a reopened handle reaches the chip again."""
    rig = make_rig("mpu6050")
    source = rig.source()
    run = Run(rig, source).for_(5.0)
    opens = rig.bus.opens
    rig.bus.remove_adapter()
    n_before = len(run.t)
    run.for_(10.0)
    assert len(run.t) == n_before and len(run.chunks) > 25  # nothing, but the stream ticks on
    assert source.health.faults == ("i2c_error",)
    detail = source.health.snapshot()["faults"][0]["detail"]
    assert detail.startswith("cannot reopen I2C bus 1 (/dev/i2c-1: ENOENT")
    rig.bus.restore_adapter()
    run.for_(5.0)
    assert source.health.state == "ok" and len(run.t) > n_before + 200
    assert rig.bus.opens > opens  # a new handle: the old one would have stayed dead
    assert source.health.counters["reinits"] == 1
    assert len(run.gaps()) == 1 and run.gaps()[0] > 9.0


def test_overflow_resets_marks_a_gap_and_no_window_spans_it() -> None:
    rig = make_rig("mpu6050")
    source = rig.source()
    run = Run(rig, source).for_(5.0)
    run.for_(3.0, stall_s=3.0)  # the agent stalls for longer than the FIFO holds (1.7 s)
    run.for_(10.0)
    assert source.health.counters["overflows"] >= 1 and source.gaps >= 1
    assert source.health.state == "ok"  # cleared by the next clean read
    assert run.gaps()
    windower = Windower(WindowSpec(128, 64, 50.0), 6)
    windows = [w for c in run.chunks for w in windower.push(c)]
    assert windows and windower.gaps >= 1
    assert max(w.end_t - w.start_t for w in windows) < 127 * PERIOD * 1.05


def test_stuck_sensor_is_reported_and_not_classified(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig("mpu6050", stuck_after_s=2.0)
    source = rig.source()
    run = Run(rig, source).for_(5.0)
    with caplog.at_level(logging.INFO, logger="agent.sensors.health"):
        rig.chip.stick()
        run.for_(6.0)
        assert source.health.faults == ("stuck",)
        rig.chip.unstick()
        run.for_(3.0)
    assert source.health.state == "ok"
    assert source.health.counters["stuck_samples"] > 150
    assert len(run.gaps()) == 1 and run.gaps()[0] > 3.5  # 6 s stuck, the first 2 s passed on
    assert len(caplog.records) == 2


def test_lsm6dsox_at_52_hz() -> None:
    rig = make_rig("lsm6dsox")
    source = rig.source()
    assert source.header.sample_rate_hz == 6667 / 128 and source.info.chip == "LSM6DSOX"
    t = Run(rig, source).for_(10.0).t
    assert 510 <= len(t) <= 535 and np.allclose(np.diff(t), 128 / 6667, rtol=0.03)


@pytest.mark.parametrize("freq_fine", [-60, 0, 50])
def test_lsm6dsox_timed_at_its_own_rate(freq_fine: int) -> None:
    """The nominal 12.5 Hz is 13.02 Hz and a part's trim moves it further (+50: 14.0 Hz, 12 %
    over the nominal, beyond what the timer may learn): the source times the samples at the rate
    the part reports, so they come evenly spaced from the start, without false gaps."""
    rig = make_rig("lsm6dsox", freq_fine=freq_fine, rate_hz=12.5)
    source = rig.source()
    true_hz = 6667 * (1 + 0.0015 * freq_fine) / 512
    assert source.header.sample_rate_hz == pytest.approx(true_hz, rel=1e-12)
    run = Run(rig, source).for_(300.0)
    t = run.t
    assert source.gaps == 0 and source.timer.resyncs == 0
    assert np.allclose(np.diff(t), 1 / true_hz, rtol=0.01)  # from the first sample on
    assert (t[-1] - t[0]) * true_hz == pytest.approx(len(t) - 1, rel=2e-3)


def test_absent_or_wrong_chip_at_start_is_a_clear_error() -> None:
    rig = make_rig("mpu6050")
    rig.bus.detach(0x68)
    with pytest.raises(SensorNotFoundError, match="no chip answers at address 0x68 on I2C bus 1"):
        rig.source()
    assert rig.bus.closed  # not leaked
    rig = make_rig("mpu6050", who_am_i=0x71)
    with pytest.raises(SensorNotFoundError, match='set sensor.chip = "mpu9250"'):
        rig.source()


def test_transfer_errors_at_start_are_retried() -> None:
    rig = make_rig("mpu6050", retries=3)
    rig.bus.fail(3, errno.EIO)
    assert rig.source().info.chip == "MPU-6050"
    rig = make_rig("mpu6050", retries=3)
    rig.bus.fail(4, errno.EIO)
    with pytest.raises(SourceError, match="reading WHO_AM_I failed: EIO"):
        rig.source()


def test_missing_bus_and_impossible_settings() -> None:
    rig = make_rig("mpu6050", bus=250)
    with pytest.raises(SourceError, match=r"I2C bus 250 is not available \(/dev/i2c-250"):
        open_sensor_source(rig.config, clock=rig.clock, stop=rig.stop)  # the real smbus2 path

    def no_bus(n: int) -> object:
        raise AssertionError("the bus must not be opened for impossible settings")

    rig = make_rig("mpu6050", rate_hz=30.0)
    with pytest.raises(ConfigError, match="sensor.rate_hz = 30 is not a rate the MPU-6050 makes"):
        open_sensor_source(rig.config, clock=rig.clock, stop=rig.stop, bus_factory=no_bus)  # type: ignore[arg-type]


def test_stop_ends_the_stream_and_closes_the_bus() -> None:
    rig = make_rig("mpu6050")
    run = Run(rig, rig.source()).for_(1.0)
    rig.stop.set()
    assert list(run.gen) == []
    assert rig.bus.closed


def test_production_path_never_imports_the_emulation() -> None:
    code = (
        "import sys, agent.cli, agent.wiring, agent.source_factory, agent.sensors.source, "
        "agent.sensors.record, agent.sensors.probe, agent.sensors.ina219; "
        "bad = [m for m in sys.modules if m.startswith('agent.testing') or m == 'smbus2']; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_failure_inside_the_fifo_stream_realigns_it() -> None:
    """One failed block read part-way through the MPU's FIFO used to leave its 12-byte frames
    out of step for good (acc_z read 0.025 instead of 1.0, health 'ok'): now the FIFO is reset,
    and the stream goes on aligned after one counted gap."""
    from tests.agent.sensors.rigs import ramp_feed

    rig = make_rig("mpu6050", ramp_feed())
    source = rig.source()
    run = Run(rig, source).for_(2.0)
    rig.bus.fail(1, errno.EIO, after=3)  # the 2nd FIFO block read of the next poll
    run.for_(5.0)
    v = run.values
    assert np.allclose(v[:, 2], 1.0)  # every acc_z, after the failure too
    steps = np.round(np.diff(v[:, 0]) * 8192) % 8000  # the ramp's index steps by 1 (mod 8000)
    assert len(np.flatnonzero(steps != 1)) == 1 and len(run.gaps()) == 1  # one jump: the gap
    c = source.health.counters
    assert c["fifo_resyncs"] == 1 and c["gaps"] == 1 and source.gaps == 1
    assert source.health.state == "ok"


def test_backoff_stays_finite_for_ever() -> None:
    """A sensor away for ~17 minutes reached 2 ** 1024 in the backoff: OverflowError."""
    from agent.sensors.source import RETRY_MAX_S, backoff_s

    assert backoff_s(1) < backoff_s(2) < RETRY_MAX_S
    assert backoff_s(1025) == backoff_s(10**9) == RETRY_MAX_S


@pytest.mark.parametrize(
    ("chip", "gyro_dps", "limit_dps"),
    [("mpu6050", 1000, 32767 / 32.8), ("mpu6050", 2000, 32767 / 16.4), ("lsm6dsox", 250, 286.71)],
)
def test_full_scale_is_the_largest_reading(chip: str, gyro_dps: int, limit_dps: float) -> None:
    """Saturation is judged against what the chip can really report (32767 LSB), not the
    nominal range: a clipped MPU gyro at +-1000 reads 998.99 deg/s, under 0.999 x 1000."""
    import math

    from agent.fronts import SATURATION

    source = make_rig(chip, gyro_range_dps=gyro_dps).source()
    gyro = [c.full_scale for c in source.header.channels if c.unit == "rad/s"]
    assert gyro == pytest.approx([math.radians(limit_dps)] * 3, rel=1e-4)
    clipped = 32767 * (limit_dps / 32767)
    assert clipped >= SATURATION * limit_dps  # a clipped reading counts as saturated


def test_timer_resyncs_are_counted_as_gaps() -> None:
    """A chip 20 % slow (beyond what the timer's loop follows) makes the sample times jump
    now and then: each jump is a gap in the stream, and the counters must say so."""
    rig = make_rig("mpu6050", rate_error=-0.2)
    source = rig.source()
    run = Run(rig, source).for_(60.0)
    assert source.timer.resyncs > 0
    assert source.gaps == source.timer.resyncs == len(run.gaps())
    assert source.health.counters["gaps"] == source.gaps


@needs_no_i2c_bus_1
def test_a_second_reader_of_the_same_chip_is_refused() -> None:
    """The daemon and a record started beside it would split the FIFO's samples between them:
    the second process is refused before it touches the bus (the real-bus path; no hardware
    needed, the check comes first)."""
    from agent.instance import claim

    rig = make_rig("mpu6050")
    held = claim("i2c/1/0x68")  # another process reading bus 1, address 0x68
    assert held is not None
    try:
        with pytest.raises(SourceError, match="another har-agent process is reading the sensor"):
            open_sensor_source(rig.config, clock=rig.clock, stop=rig.stop)
    finally:
        held.close()
    # free again: the real path goes on to the bus (which this machine lacks)
    with pytest.raises(SourceError, match=r"I2C bus 1 is not available|cannot open I2C bus 1"):
        open_sensor_source(rig.config, clock=rig.clock, stop=rig.stop)
    again = claim("i2c/1/0x68")  # and the failed open released its claim
    assert again is not None
    again.close()
