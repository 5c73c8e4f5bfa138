"""The MPU-6050 family driver against the register-level emulation."""

import errno
import math

import numpy as np
import pytest

from agent.clock import SystemClock
from agent.errors import ConfigError, SensorNotFoundError, SensorReadError
from agent.sensors import mpu6050 as m
from agent.sensors.imu import ImuSettings
from agent.testing.feeds import ConstantFeed
from agent.testing.i2c_emulation import EmulatedBus
from tests.agent.sensors.rigs import make_rig, ramp_feed, still_rig


def settings(**kw: object) -> ImuSettings:
    base = dict(
        chip="mpu6050",
        bus=1,
        address=0x68,
        rate_hz=50.0,
        accel_range_g=4,
        gyro_range_dps=500,
        dlpf_hz=20.0,
    )
    base.update(kw)
    return ImuSettings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("chip", ["mpu6050", "mpu6500", "mpu9250"])
def test_identifies_each_variant(chip: str) -> None:
    rig = still_rig(chip)
    info = rig.driver().open()
    assert info.chip == m.VARIANTS[chip].name
    assert info.who_am_i == m.VARIANTS[chip].who_am_i[0]
    assert info.fifo_samples == m.VARIANTS[chip].fifo_bytes // 12


def test_wrong_variant_names_the_fix() -> None:
    rig = still_rig("mpu6050", who_am_i=0x70)  # an MPU-6500 die on a "GY-521" board
    with pytest.raises(SensorNotFoundError, match='is an MPU-6500 .*set sensor.chip = "mpu6500"'):
        rig.driver().open()


def test_unknown_chip_and_absent_chip() -> None:
    rig = still_rig("mpu6050", who_am_i=0x98)
    with pytest.raises(SensorNotFoundError, match="not an MPU-6050 .*0x98"):
        rig.driver().open()
    rig = still_rig("mpu6050")
    rig.bus.detach(0x68)
    with pytest.raises(SensorNotFoundError, match="no chip answers at address 0x68 on I2C bus 1"):
        rig.driver().open()


def test_configuration_registers_as_the_datasheet_says() -> None:
    rig = still_rig("mpu6050", rate_hz=100.0, dlpf_hz=42.0, accel_range_g=8, gyro_range_dps=1000)
    info = rig.driver().open()
    regs = rig.chip.regs
    assert regs[m.PWR_MGMT_1] == 0x01  # awake, clock from the X gyro PLL
    assert regs[m.SMPLRT_DIV] == 9  # 1 kHz / (1 + 9) = 100 Hz
    assert regs[m.CONFIG] == 3  # DLPF 42 Hz
    assert regs[m.GYRO_CONFIG] == 2 << 3  # +-1000 deg/s
    assert regs[m.ACCEL_CONFIG] == 2 << 3  # +-8 g
    assert regs[m.INT_ENABLE] == 0x10  # FIFO_OFLOW_EN
    assert regs[m.FIFO_EN] == 0x78  # XG, YG, ZG, ACCEL
    assert regs[m.USER_CTRL] == 0x40  # FIFO on
    writes = rig.chip.writes
    assert writes[0] == (m.PWR_MGMT_1, 0x80)  # DEVICE_RESET first
    # the FIFO starts last: routing off, reset (with USER_CTRL.FIFO_EN 0), enable, routing on
    assert writes[-5:] == [
        (m.FIFO_EN, 0),
        (m.USER_CTRL, 0),
        (m.USER_CTRL, 0x04),
        (m.USER_CTRL, 0x40),
        (m.FIFO_EN, 0x78),
    ]
    assert (info.rate_hz, info.bandwidth_hz) == (100.0, 42.0)
    assert rig.chip.sample_rate_hz == 100.0


def test_mpu6500_sets_its_accelerometer_filter() -> None:
    rig = still_rig("mpu6500")
    rig.driver().open()
    assert rig.chip.regs[m.ACCEL_CONFIG2] == rig.chip.regs[m.CONFIG] == 4


@pytest.mark.parametrize(
    ("rate", "div"), [(1000.0, 0), (500.0, 1), (200.0, 4), (100.0, 9), (50.0, 19), (3.90625, 255)]
)
def test_sample_rate_divider(rate: float, div: int) -> None:
    assert m.plan(m.MPU6050, settings(rate_hz=rate)).smplrt_div == div


@pytest.mark.parametrize(("rate", "nearest"), [(30.0, "29.41 or 30.3"), (2.0, "3.906")])
def test_impossible_rates_say_what_is_possible(rate: float, nearest: str) -> None:
    with pytest.raises(ConfigError, match=f"sensor.rate_hz = {rate:g} .*nearest: {nearest}"):
        m.plan(m.MPU6050, settings(rate_hz=rate))


@pytest.mark.parametrize(
    ("hz", "cfg"), [(20.0, 4), (25.0, 4), (42.0, 3), (100.0, 2), (5.0, 6), (1.0, 6), (400.0, 1)]
)
def test_dlpf_nearest_bandwidth(hz: float, cfg: int) -> None:
    assert m.plan(m.MPU6050, settings(dlpf_hz=hz)).dlpf_cfg == cfg


def test_ranges_outside_the_chip_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sensor.accel_range_g = 3 .*allowed: 2, 4, 8, 16"):
        m.plan(m.MPU6050, settings(accel_range_g=3))


@pytest.mark.parametrize(
    ("frame", "g_range", "dps_range", "expected"),
    [
        ("4000 c000 0000 0083 ff7d 0000", 2, 250, (1.0, -1.0, 0.0, 1.0, -1.0, 0.0)),
        (
            "2000 e000 7fff 0041 ffbf 0000",
            4,
            500,
            (1.0, -1.0, 32767 / 8192, 65 / 65.5, -65 / 65.5, 0),
        ),
        (
            "1000 f000 8000 0021 ffdf 7fff",
            8,
            1000,
            (1.0, -1.0, -8.0, 33 / 32.8, -33 / 32.8, 32767 / 32.8),
        ),
        (
            "0800 f800 0001 0010 fff0 8000",
            16,
            2000,
            (1.0, -1.0, 1 / 2048, 1.0 / 1.025, -1.0 / 1.025, -32768 / 16.4),
        ),
    ],
)
def test_known_raw_to_known_units(
    frame: str, g_range: int, dps_range: int, expected: tuple[float, ...]
) -> None:
    batch = m.decode_fifo(bytes.fromhex(frame.replace(" ", "")), g_range, dps_range)
    want = np.array(expected)
    want[3:] = np.radians(want[3:])
    assert batch.values[0] == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("g_range", [2, 4, 8, 16])
@pytest.mark.parametrize("dps_range", [250, 500, 1000, 2000])
def test_every_full_scale_through_the_emulated_chip(g_range: int, dps_range: int) -> None:
    a_lsb, g_lsb = m.ACCEL_LSB_PER_G[g_range], m.GYRO_LSB_PER_DPS[dps_range]
    raw = np.array([12345, -23456, 32767, 1234, -32768, 7])
    physical = np.concatenate([raw[:3] / a_lsb, np.radians(raw[3:] / g_lsb)])
    rig = make_rig(
        "mpu6050", ConstantFeed(physical), accel_range_g=g_range, gyro_range_dps=dps_range
    )
    driver = rig.driver()
    driver.open()
    rig.clock.advance(0.1)
    batch = driver.read()
    assert len(batch) == 5
    assert bytes(rig.chip.fifo) == b""  # drained
    assert np.allclose(batch.values, physical, rtol=1e-12, atol=0)


def test_fifo_block_reads_keep_order_and_stay_within_32_bytes() -> None:
    rig = make_rig("mpu6050", ramp_feed())
    driver = rig.driver()
    driver.open()
    before = rig.bus.ops["read_i2c_block_data"]
    rig.clock.advance(1.0)  # 50 samples = 600 bytes
    batch = driver.read()
    blocks = rig.bus.ops["read_i2c_block_data"] - before
    assert len(batch) == 50
    assert blocks == 1 + math.ceil(600 / 32)  # FIFO_COUNT, then 32-byte FIFO reads
    assert rig.bus.ops["read_byte_data"] >= 1
    index = np.rint(batch.values[:, 0] * 8192)
    assert index.tolist() == list(range(50))  # oldest first, none lost, none repeated
    rig.clock.advance(0.5)
    more = driver.read()
    assert np.rint(more.values[:, 0] * 8192).tolist() == list(range(50, 75))


@pytest.mark.parametrize(("chip", "capacity"), [("mpu6050", 1024), ("mpu6500", 512)])
def test_overflow_resets_the_fifo(chip: str, capacity: int) -> None:
    rig = make_rig(chip, ramp_feed())
    driver = rig.driver()
    driver.open()
    rig.clock.advance(capacity / 12 / 50 + 0.5)
    batch = driver.read()
    assert rig.chip.overflows >= 1
    assert batch.overflow and len(batch) == 0
    assert len(rig.chip.fifo) == 0  # the driver reset it
    rig.clock.advance(0.2)
    fresh = driver.read()
    assert not fresh.overflow and len(fresh) == 10
    first = int(np.rint(fresh.values[0, 0] * 8192))
    assert first > capacity // 12  # samples measured during the overflow are gone


def test_transfer_errors_name_the_errno_and_do_not_stick() -> None:
    rig = still_rig("mpu6050")
    driver = rig.driver()
    driver.open()
    rig.bus.fail(1, errno.EIO)
    with pytest.raises(SensorReadError, match=r"I2C bus 1, address 0x68: reading the FIFO .*EIO"):
        driver.read()
    rig.bus.fail(1, errno.ETIMEDOUT)
    with pytest.raises(SensorReadError, match="ETIMEDOUT"):
        driver.read()
    rig.clock.advance(0.2)
    assert len(driver.read()) == 10


@pytest.mark.parametrize("chip", ["mpu6050", "mpu6500"])
def test_a_reset_never_runs_with_sensors_routed_into_the_fifo(chip: str) -> None:
    """InvenSense's eMPL, Linux and ArduPilot switch FIFO_EN (0x23) off around FIFO_RESET: a
    frame written during the reset could leave a torn frame and every later one out of step."""
    rig = still_rig(chip)
    drv = rig.driver()
    drv.open()
    rig.clock.advance(2.0)  # an overflow: read() resets the FIFO
    assert drv.read().overflow
    drv.reset_fifo()
    routed = 0
    for reg, value in rig.chip.writes:
        if reg == m.FIFO_EN:
            routed = value
        elif reg == m.USER_CTRL and value & m.USER_FIFO_RESET:
            assert routed == 0 and not value & m.USER_FIFO_EN


def test_open_waits_for_the_gyro_to_settle_before_the_fifo_starts() -> None:
    """Samples of the start-up time (Linux: 60 ms MPU-6050, 70 ms MPU-6500) never enter the
    FIFO, after a first open and after a re-initialisation alike."""
    rig = still_rig("mpu6500")
    sleeps: list[tuple[float, int]] = []

    def sleep(s: float) -> None:
        sleeps.append((s, len(rig.chip.writes)))
        rig.clock.advance(s)

    from agent.sensors.source import imu_settings

    drv = m.Mpu6050Driver(rig.bus, imu_settings(rig.config), sleep=sleep)
    for _ in range(2):  # open, then a re-initialisation
        first = len(rig.chip.writes)
        sleeps.clear()
        drv.open()
        wait, at = sleeps[-1]
        assert wait >= 0.07
        writes = rig.chip.writes[first:]
        before, after = writes[: at - first], writes[at - first :]
        assert before[-1] == (m.INT_ENABLE, m.FIFO_OFLOW)  # configured, FIFO still off
        assert (m.FIFO_EN, 0x78) not in before and after[-1] == (m.FIFO_EN, 0x78)
        assert rig.chip.fifo == bytearray()  # nothing of the settling time is waiting


@pytest.mark.parametrize(("chip", "frames"), [("mpu6050", 85), ("mpu6500", 42)])
def test_an_overflow_during_the_drain_never_gives_misaligned_samples(
    chip: str, frames: int
) -> None:
    """The FIFO is read after its count; on a real bus a sample can arrive meanwhile and, with
    the FIFO one frame from full, overflow it: its oldest bytes, not read yet, are dropped and
    every frame read is out of step. Such a batch is dropped and reported as an overflow."""
    found = 0
    for k in range(0, 1100, 5):
        rig = make_rig(chip, ramp_feed())
        rig.bus = EmulatedBus(rig.clock, {0x68: rig.chip}, bit_rate_hz=100_000)
        drv = rig.driver()
        drv.open()
        rig.clock.advance(frames / 50 - 0.001 + k * 0.00002)  # the host stalls, FIFO near full
        overflows = rig.chip.overflows
        batch = drv.read()
        if rig.chip.overflows > overflows and not batch.overflow:
            pytest.fail("the chip overflowed during the drain, the batch was passed on")
        if len(batch):
            np.testing.assert_allclose(batch.values[:, 2], 1.0, atol=1e-3)  # acc_z = 1 g
        found += batch.overflow and len(batch) == 0
    assert found  # the race was hit (the timing makes it likely for some stalls)


def test_the_timed_bus_spends_wire_time_and_needs_a_fake_clock() -> None:
    rig = still_rig("mpu6050")
    bus = EmulatedBus(rig.clock, {0x68: rig.chip}, bit_rate_hz=100_000)
    t0 = rig.clock.monotonic()
    bus.read_i2c_block_data(0x68, m.FIFO_R_W, 32)
    assert rig.clock.monotonic() - t0 == pytest.approx(35 * 9 / 100_000)
    with pytest.raises(TypeError, match="FakeClock"):
        EmulatedBus(SystemClock(), {}, bit_rate_hz=100_000)


def test_emulated_power_on_state_and_empty_fifo_read() -> None:
    """RM-9250 register 107 resets to 0x01 on the MPU-6500/9250 (0x40, asleep, on the 6050); an
    empty FIFO_R_W returns the last byte read (RM-6050 register 116)."""
    for chip, power in (("mpu6050", 0x40), ("mpu6500", 0x01), ("mpu9250", 0x01)):
        assert still_rig(chip).chip.regs[m.PWR_MGMT_1] == power
    rig = still_rig("mpu6050")
    rig.chip.fifo[:] = b"\x12\x34"
    assert rig.bus.read_i2c_block_data(0x68, m.FIFO_R_W, 4) == [0x12, 0x34, 0x34, 0x34]
