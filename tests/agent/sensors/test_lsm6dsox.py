"""The LSM6DSOX driver against the register-level emulation."""

import errno
import logging
import math

import numpy as np
import pytest

from agent.clock import FakeClock
from agent.errors import ConfigError, SensorNotFoundError, SensorReadError
from agent.sensors import lsm6dsox as s
from agent.sensors.imu import ImuSettings
from agent.sensors.lsm6dsox_fifo import TAG_ACCEL, TAG_GYRO, TagPairer
from agent.testing import lsm6dsox_model
from agent.testing.feeds import ConstantFeed, RecordingFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.lsm6dsox_model import Lsm6dsoxModel
from tests.agent.sensors.rigs import STILL, make_rig, ramp_feed, still_rig


def settings(**kw: object) -> ImuSettings:
    base = dict(
        chip="lsm6dsox",
        bus=1,
        address=0x6A,
        rate_hz=52.0,
        accel_range_g=4,
        gyro_range_dps=500,
        dlpf_hz=20.0,
    )
    base.update(kw)
    return ImuSettings(**base)  # type: ignore[arg-type]


def word(sensor: int, slot: int, xyz: tuple[int, int, int]) -> bytes:
    return bytes([(sensor << 3) | (slot << 1)]) + np.array(xyz, dtype="<i2").tobytes()


def test_identifies_and_configures() -> None:
    rig = still_rig("lsm6dsox")
    info = rig.driver().open()
    assert (info.chip, info.who_am_i, info.fifo_samples) == ("LSM6DSOX", 0x6C, 256)
    assert info.rate_hz == 6667 / 128  # "52 Hz" is 52.09 Hz: the chip's clock / 128
    regs = rig.chip.regs
    assert regs[s.CTRL3_C] == 0x44  # BDU | IF_INC
    assert regs[s.CTRL1_XL] == (3 << 4) | (0b10 << 2)  # 52 Hz, +-4 g, LPF2 off (ODR/2 = 26 Hz)
    assert regs[s.CTRL2_G] == (3 << 4) | (0b01 << 2)  # 52 Hz, +-500 dps
    assert regs[s.CTRL8_XL] == 0
    assert regs[s.FIFO_CTRL3] == 0x33  # both batched at 52 Hz
    assert regs[s.FIFO_CTRL4] == 0b110  # continuous
    assert rig.chip.writes[0] == (s.CTRL3_C, s.SW_RESET)
    assert rig.chip.writes[-2:] == [(s.FIFO_CTRL4, 0), (s.FIFO_CTRL4, 0b110)]
    assert info.bandwidth_hz == 26.0


def test_lpf2_when_a_narrow_band_is_asked() -> None:
    rig = still_rig("lsm6dsox", rate_hz=104.0, dlpf_hz=10.0)
    info = rig.driver().open()
    assert rig.chip.regs[s.CTRL1_XL] & s.LPF2_XL_EN
    assert rig.chip.regs[s.CTRL8_XL] >> 5 == 1  # ODR/10
    assert info.bandwidth_hz == pytest.approx(10.4)


@pytest.mark.parametrize(
    ("who", "match"), [(0x69, "LSM6DS3 .*not support"), (0x6A, "not an LSM6DSOX .*0x6a")]
)
def test_other_st_chips_are_refused_clearly(who: int, match: str) -> None:
    with pytest.raises(SensorNotFoundError, match=match):
        still_rig("lsm6dsox", who_am_i=who).driver().open()


def test_absent_chip() -> None:
    rig = still_rig("lsm6dsox")
    rig.bus.detach(0x6A)
    with pytest.raises(SensorNotFoundError, match="SA0 low = 0x6a"):
        rig.driver().open()


def test_rates_must_be_output_data_rates() -> None:
    with pytest.raises(ConfigError, match="not an LSM6DSOX output data rate .*12.5, 26, 52"):
        s.plan(settings(rate_hz=50.0))


@pytest.mark.parametrize("g_range", [2, 4, 8, 16])
@pytest.mark.parametrize("dps_range", [250, 500, 1000, 2000])
def test_every_full_scale_known_raw_to_known_units(g_range: int, dps_range: int) -> None:
    raw = np.array([12345, -23456, 32767, 1234, -32768, 7])
    g_per_lsb = s.ACCEL_MG_PER_LSB[g_range] / 1000
    dps_per_lsb = s.GYRO_MDPS_PER_LSB[dps_range] / 1000
    physical = np.concatenate([raw[:3] * g_per_lsb, np.radians(raw[3:] * dps_per_lsb)])
    rig = make_rig(
        "lsm6dsox", ConstantFeed(physical), accel_range_g=g_range, gyro_range_dps=dps_range
    )
    driver = rig.driver()
    driver.open()
    assert rig.chip.regs[s.CTRL1_XL] >> 2 & 0b11 == s.FS_XL[g_range]
    assert rig.chip.regs[s.CTRL2_G] >> 2 & 0b11 == s.FS_G[dps_range]
    rig.clock.advance(0.1)
    batch = driver.read()
    assert len(batch) == 5
    assert np.allclose(batch.values, physical, rtol=1e-12, atol=0)
    # the datasheet's own example: 1 LSB = 0.061 mg at +-2 g, 70 mdps at +-2000 dps
    assert s.ACCEL_MG_PER_LSB[2] == 0.061 and s.GYRO_MDPS_PER_LSB[2000] == 70.0


def test_tagged_fifo_words_in_4_word_block_reads() -> None:
    rig = make_rig("lsm6dsox", ramp_feed(52.0))
    driver = rig.driver()
    driver.open()
    rig.clock.advance(1.0)  # 52 samples = 104 words
    rig.chip.sync(rig.clock.monotonic())
    fifo = list(rig.chip.fifo)
    assert [w[0] >> 3 for w in fifo[:4]] == [TAG_GYRO, TAG_ACCEL] * 2
    assert [(w[0] >> 1) & 3 for w in fifo[:6]] == [0, 0, 1, 1, 2, 2]  # TAG_CNT: the time slot
    before = rig.bus.ops["read_i2c_block_data"]
    batch = driver.read()
    assert len(batch) == 52
    assert rig.bus.ops["read_i2c_block_data"] - before == 1 + math.ceil(104 / 4)
    assert np.rint(batch.values[:, 0] * 8192).tolist() == list(range(52))


def test_pairer_across_reads_and_lost_partners() -> None:
    pairer = TagPairer()
    a = word(TAG_ACCEL, 0, (1, 2, 3))
    g = word(TAG_GYRO, 0, (4, 5, 6))
    ts = bytes([0x04 << 3]) + bytes(6)  # a timestamp word: skipped
    assert pairer.push(g).shape == (0, 6)  # its accel partner comes with the next read
    assert pairer.push(ts + a).tolist() == [[1, 2, 3, 4, 5, 6]]
    lost = word(TAG_ACCEL, 1, (7, 7, 7))  # its gyro word was overwritten
    g2, a2 = word(TAG_GYRO, 2, (8, 8, 8)), word(TAG_ACCEL, 2, (9, 9, 9))
    assert pairer.push(lost + g2 + a2).tolist() == [[9, 9, 9, 8, 8, 8]]
    assert pairer.dropped == 1 and not pairer.pending


def test_overflow_is_detected_and_reset() -> None:
    rig = make_rig("lsm6dsox", ramp_feed(52.0))
    driver = rig.driver()
    driver.open()
    rig.clock.advance(256 / 52 + 1.0)  # more than 512 words
    batch = driver.read()
    assert batch.overflow and len(batch) == 0
    assert rig.chip.overflows == 1 and len(rig.chip.fifo) == 0
    rig.clock.advance(0.5)
    fresh = driver.read()
    assert not fresh.overflow and len(fresh) == 26
    assert np.all(np.diff(np.rint(fresh.values[:, 0] * 8192)) == 1)


def settling_rig(n: int) -> tuple[FakeClock, EmulatedBus, Lsm6dsoxModel, s.Lsm6dsoxDriver]:
    """A still LSM6DSOX whose filters settle for ``n`` samples after every start."""
    clock = FakeClock()
    model = Lsm6dsoxModel(ConstantFeed(STILL), settling_samples=n)
    bus = EmulatedBus(clock, {0x6A: model})
    return clock, bus, model, s.Lsm6dsoxDriver(bus, settings(), sleep=clock.advance)


def assert_still(values: np.ndarray) -> None:
    """Every sample is the still feed's value (no unsettled sample got through)."""
    half_lsb = np.array([0.5 * 0.122e-3] * 3 + [np.radians(0.5 * 17.5e-3)] * 3)
    assert np.all(np.abs(values - np.array(STILL)) <= half_lsb + 1e-12)


def test_settling_samples_are_masked_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    clock, _bus, model, driver = settling_rig(4)
    driver.open()
    assert model.regs[lsm6dsox_model.CTRL4_C] & lsm6dsox_model.DRDY_MASK  # 0x13 bit 3
    clock.advance(10 / 52 + 1e-6)  # 10 samples, the first 4 still settling
    caplog.set_level(logging.DEBUG, logger="agent.sensors.lsm6dsox")
    batch = driver.read()
    assert len(batch) == 6 and not batch.resync
    assert_still(batch.values)
    assert driver.settling_words == 8  # 4 accelerometer + 4 gyroscope words
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]  # normal: not a warning
    # a re-initialisation (what the source does after repeated failures) starts the sensors
    # again: they settle again, and nothing from before the re-open is read
    clock.advance(0.5)
    driver.open()
    clock.advance(10 / 52 + 1e-6)
    again = driver.read()
    assert len(again) == 6
    assert_still(again.values)
    assert driver.settling_words == 16


def test_a_saturated_sample_after_settling_is_kept() -> None:
    values = np.zeros((10, 6))
    values[:, 0] = [0.5] * 5 + [9.0] * 5  # then a knock beyond +-4 g: X clips at 32767
    clock = FakeClock()
    model = Lsm6dsoxModel(RecordingFeed(values, 52.0), settling_samples=2)
    driver = s.Lsm6dsoxDriver(EmulatedBus(clock, {0x6A: model}), settings(), sleep=clock.advance)
    driver.open()
    clock.advance(10 / 52 + 1e-6)
    batch = driver.read()
    assert len(batch) == 8 and driver.settling_words == 4
    assert batch.values[3:, 0].tolist() == [32767 * 0.122e-3] * 5  # full scale, kept


def test_the_model_gives_unsettled_values_without_the_mask() -> None:
    clock, _bus, model, _driver = settling_rig(4)
    model.write_register(s.CTRL3_C, s.SW_RESET)
    for reg, value in s.plan(settings()).writes():
        if reg != lsm6dsox_model.CTRL4_C:
            model.write_register(reg, value)
    model.write_register(s.FIFO_CTRL4, s.FIFO_CONTINUOUS)
    clock.advance(10 / 52 + 1e-6)
    model.sync(clock.monotonic())
    accel_z = [int.from_bytes(w[5:7], "little", signed=True) for w in model.fifo if w[0] >> 3 == 2]
    still_z = round(STILL[2] / 0.122e-3)
    assert accel_z[4:] == [still_z] * 6
    assert accel_z[:4] == [round(still_z * k / 5) for k in range(1, 5)]  # rising, unmarked


def test_open_starts_the_fifo_empty() -> None:
    clock, bus, model, driver = settling_rig(0)
    read_block = bus.read_i2c_block_data

    def slow(addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        if register == s.CTRL1_XL:  # the configuration check stalls (a busy bus, a slow host)
            clock.advance(0.2)
        return read_block(addr, register, length, force)

    bus.read_i2c_block_data = slow  # type: ignore[method-assign]
    driver.open()
    assert len(model.fifo) == 0 and model.regs[s.FIFO_CTRL4] == s.FIFO_CONTINUOUS
    assert model.writes[-2:] == [(s.FIFO_CTRL4, s.FIFO_BYPASS), (s.FIFO_CTRL4, s.FIFO_CONTINUOUS)]


def test_pairer_skips_words_marked_as_settling() -> None:
    pairer = TagPairer()
    marked_g = word(TAG_GYRO, 0, (0x7FFE, 0x7FFE, 0x7FFE))
    a0 = word(TAG_ACCEL, 0, (1, 2, 3))  # its gyroscope partner was still settling
    g1, a1 = word(TAG_GYRO, 1, (4, 5, 6)), word(TAG_ACCEL, 1, (7, 8, 9))
    assert pairer.push(marked_g + a0 + g1 + a1).tolist() == [[7, 8, 9, 4, 5, 6]]
    assert (pairer.settling, pairer.dropped) == (1, 1)
    # once both sensors gave a sample, a reading of 0x7FFD or more is a saturated sample
    g2, a2 = word(TAG_GYRO, 2, (0x7FFF, 0, 0)), word(TAG_ACCEL, 2, (0x7FFD, 0, 0))
    assert pairer.push(g2 + a2).tolist() == [[0x7FFD, 0, 0, 0x7FFF, 0, 0]]
    assert pairer.settling == 1
    # until the sensors start again: 0x7FFD is the first marked value (Linux: val >= 0x7ffd)
    pairer.restart()
    g3, a3 = word(TAG_GYRO, 3, (0x7FFD, 0, 0)), word(TAG_ACCEL, 3, (0x7FFC, 0, 0))
    g0, a0 = word(TAG_GYRO, 0, (1, 1, 1)), word(TAG_ACCEL, 0, (0x7FFC, 1, 1))
    assert pairer.push(g3 + a3 + g0 + a0).tolist() == [[0x7FFC, 1, 1, 1, 1, 1]]
    assert pairer.settling == 2


def test_a_drain_that_fails_part_way_reports_the_gap() -> None:
    rig = make_rig("lsm6dsox", ramp_feed(52.0))
    driver = rig.driver()
    driver.open()
    rig.clock.advance(1.0)  # 52 samples = 104 words = 26 block reads
    rig.bus.fail(1, errno.EIO, after=1 + 5)  # FIFO_STATUS, 5 blocks (20 words popped), then EIO
    with pytest.raises(SensorReadError, match="reading the FIFO"):
        driver.read()
    gap = driver.read()  # the popped words are lost: a gap, not a silent jump
    assert gap.resync and len(gap) == 0
    assert len(rig.chip.fifo) == 0  # the rest was dropped with them: the stream restarts clean
    rig.clock.advance(0.5)
    fresh = driver.read()
    assert not fresh.resync and len(fresh) == 26
    assert np.all(np.diff(np.rint(fresh.values[:, 0] * 8192)) == 1)


def test_lsm6dso32_ranges_and_sensitivities() -> None:
    # ST lsm6dso32_reg.h lsm6dso32_fs_xl_t: 4g 0x00, 8g 0x02, 16g 0x03, 32g 0x01; mg/LSB from
    # ST's lsm6dso32_from_fs*_to_mg and ST's Linux driver (122/244/488/976 ug)
    assert s.FS_XL_DSO32 == {4: 0b00, 8: 0b10, 16: 0b11, 32: 0b01}
    assert s.ACCEL_MG_PER_LSB_DSO32 == {4: 0.122, 8: 0.244, 16: 0.488, 32: 0.976}
    # the same codes on the LSM6DSOX: 2/16/4/8 g
    assert s.FS_XL == {2: 0b00, 16: 0b01, 4: 0b10, 8: 0b11}
    with pytest.raises(ConfigError, match=r"accel_range_g = 2 .*allowed: 4, 8, 16, 32"):
        s.plan(settings(chip="lsm6dso32", accel_range_g=2))
    with pytest.raises(ConfigError, match=r"accel_range_g = 32 .*allowed: 2, 4, 8, 16"):
        s.plan(settings(accel_range_g=32))


@pytest.mark.parametrize("g_range", [4, 8, 16, 32])
def test_lsm6dso32_reads_1_g_at_rest(g_range: int) -> None:
    clock = FakeClock()
    model = Lsm6dsoxModel(ConstantFeed(STILL), part="lsm6dso32")  # WHO_AM_I 0x6C, like a DSOX
    bus = EmulatedBus(clock, {0x6A: model})
    chip = settings(chip="lsm6dso32", accel_range_g=g_range)
    driver = s.Lsm6dsoxDriver(bus, chip, sleep=clock.advance)
    info = driver.open()
    clock.advance(0.2)
    batch = driver.read()
    lsb_g = {4: 0.122, 8: 0.244, 16: 0.488, 32: 0.976}[g_range] / 1000
    assert len(batch) == 10
    assert np.allclose(batch.values[:, :3], STILL[:3], atol=lsb_g / 2 + 1e-12)  # not halved
    assert info.chip == "LSM6DSO32"
    assert info.accel_limit_g == pytest.approx(32767 * lsb_g)  # saturation: the DSO32's own scale


def test_the_filter_is_said_to_be_the_accelerometers(caplog: pytest.LogCaptureFixture) -> None:
    rig = still_rig("lsm6dsox", rate_hz=104.0, dlpf_hz=10.0)
    driver = rig.driver()
    with caplog.at_level(logging.INFO, logger="agent.sensors.lsm6dsox"):
        info = driver.open()
        driver.open()  # a re-initialisation: said once
    assert info.bandwidth_hz == pytest.approx(10.4)
    rate, record = caplog.records
    assert "104 Hz output data rate is 104.172 Hz on this part" in rate.getMessage()
    assert "10.4 Hz low-pass is the accelerometer's" in record.getMessage()
    assert "gyroscope's filter is not configured" in record.getMessage()
    assert "104 Hz output data rate" in record.getMessage()


@pytest.mark.parametrize(
    ("code", "freq_fine", "hz"),
    [
        (1, 0x00, 6667 / 512),  # "12.5 Hz": 13.02 Hz
        (2, 0x00, 6667 / 256),
        (4, 0x00, 6667 / 64),  # "104 Hz": 104.17 Hz
        (8, 0x00, 6667 / 4),
        (4, 0x1B, 6667 * (1 + 0.0015 * 27) / 64),  # +4.05 %
        (4, 0xE6, 6667 * (1 - 0.0015 * 26) / 64),  # two's complement: -26
        (1, 0x80, 6667 * (1 - 0.0015 * 128) / 512),
        (1, 0x7F, 6667 * (1 + 0.0015 * 127) / 512),
    ],
)
def test_true_rate_from_the_code_and_the_trim(code: int, freq_fine: int, hz: float) -> None:
    assert s.true_rate_hz(code, freq_fine) == pytest.approx(hz, rel=1e-12)


@pytest.mark.parametrize("freq_fine", [-40, -3, 0, 27, 60])
@pytest.mark.parametrize("rate_hz", [12.5, 104.0, 833.0])
def test_the_rate_reported_is_the_parts_own(rate_hz: float, freq_fine: int) -> None:
    """The emulated part makes samples at its trimmed clock: the driver reads the trim and says
    the rate the samples come at, which the source times and resamples them with."""
    rig = make_rig("lsm6dsox", ConstantFeed(STILL), freq_fine=freq_fine, rate_hz=rate_hz)
    info = rig.driver().open()
    assert info.rate_hz == pytest.approx(rig.chip.rate_hz, rel=1e-12)
    assert rig.chip.regs[s.INTERNAL_FREQ_FINE] == freq_fine & 0xFF  # read, never written
    assert s.INTERNAL_FREQ_FINE not in {reg for reg, _ in rig.chip.writes}


def test_a_failed_trim_read_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = still_rig("lsm6dsox")
    read = rig.bus.read_byte_data

    def failing(addr: int, register: int, force: bool | None = None) -> int:
        if register == s.INTERNAL_FREQ_FINE:
            raise OSError(errno.EIO, "I/O error")
        return read(addr, register)

    monkeypatch.setattr(rig.bus, "read_byte_data", failing)
    with pytest.raises(SensorReadError, match="configuring the chip"):
        rig.driver().open()
