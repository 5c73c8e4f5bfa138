"""The LSM6DSOX driver against the register-level emulation."""

import math

import numpy as np
import pytest

from agent.errors import ConfigError, SensorNotFoundError
from agent.sensors import lsm6dsox as s
from agent.sensors.imu import ImuSettings
from agent.testing.feeds import ConstantFeed
from tests.agent.sensors.rigs import make_rig, ramp_feed, still_rig


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
    assert (info.chip, info.who_am_i, info.rate_hz, info.fifo_samples) == (
        "LSM6DSOX",
        0x6C,
        52,
        256,
    )
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
    assert [w[0] >> 3 for w in fifo[:4]] == [s.TAG_GYRO, s.TAG_ACCEL] * 2
    assert [(w[0] >> 1) & 3 for w in fifo[:6]] == [0, 0, 1, 1, 2, 2]  # TAG_CNT: the time slot
    before = rig.bus.ops["read_i2c_block_data"]
    batch = driver.read()
    assert len(batch) == 52
    assert rig.bus.ops["read_i2c_block_data"] - before == 1 + math.ceil(104 / 4)
    assert np.rint(batch.values[:, 0] * 8192).tolist() == list(range(52))


def test_pairer_across_reads_and_lost_partners() -> None:
    pairer = s.TagPairer()
    a = word(s.TAG_ACCEL, 0, (1, 2, 3))
    g = word(s.TAG_GYRO, 0, (4, 5, 6))
    ts = bytes([0x04 << 3]) + bytes(6)  # a timestamp word: skipped
    assert pairer.push(g).shape == (0, 6)  # its accel partner comes with the next read
    assert pairer.push(ts + a).tolist() == [[1, 2, 3, 4, 5, 6]]
    lost = word(s.TAG_ACCEL, 1, (7, 7, 7))  # its gyro word was overwritten
    g2, a2 = word(s.TAG_GYRO, 2, (8, 8, 8)), word(s.TAG_ACCEL, 2, (9, 9, 9))
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
