"""Driver for the ST LSM6DSOX (and the register-compatible LSM6DSO and LSM6DSO32) accelerometer +
gyroscope.

We support one ST family fully: the LSM6DSOX, the chip on today's common breakouts. The older
LSM6DS3 (WHO_AM_I 0x69) has an untagged FIFO with a different register layout and is refused with a
clear message. Register facts from the LSM6DSOX datasheet (DS12814, section 9 "Register
description", "DS" below), cross-checked against ST's reference driver (lsm6dsox_reg.h):

- WHO_AM_I (0x0F) reads 0x6C. I2C address 0x6A (SA0 low) or 0x6B (SA0 high).
- CTRL3_C (0x12): BOOT bit 7, BDU bit 6, IF_INC bit 2 (register auto-increment, on after reset),
  SW_RESET bit 0 (restores the registers and clears itself).
- CTRL4_C (0x13): DRDY_MASK bit 3 (ST reg.h ``lsm6dsox_ctrl4_c_t.drdy_mask``; Linux st_lsm6dsx sets
  ``drdy_mask = {0x13, BIT(3)}``). While the digital filters settle after the sensors start (reset,
  new rate), the samples are corrupted; with DRDY_MASK set the chip marks them in the FIFO with
  values of 0x7FFD or more, and the Linux driver drops every word whose first value is >= 0x7FFD
  ("invalid sample during bootstrap phase", upstream commit db3c490503be). So do we
  (:class:`TagPairer`); how many samples a start costs depends on the rate and filters. Unlike
  Linux we stop looking once a sensor's first unmarked word has come: settling only follows a
  start (we change the configuration only in :meth:`Lsm6dsoxDriver.open`), and a genuinely
  saturated X reading (0x7FFD-0x7FFF) later is a sample, not a marker.
- CTRL1_XL (0x10): ODR_XL bits 7:4, FS_XL bits 3:2 (00 = 2 g, 01 = 16 g, 10 = 4 g, 11 = 8 g),
  LPF2_XL_EN bit 1. CTRL2_G (0x11): ODR_G bits 7:4, FS_G bits 3:2 (00 = 250, 01 = 500, 10 = 1000,
  11 = 2000 dps), FS_125 bit 1. ODR codes 1..10 = 12.5, 26, 52, 104, 208, 416, 833, 1666, 3332,
  6664 Hz.
- The output data rates are nominal. The chip divides one internal clock, 6667 Hz typical, by
  ODR_Coeff = 512, 256, ..., 4 for codes 1..8 (so "12.5 Hz" is really 13.02 Hz and "104 Hz" 104.17
  Hz), and each part's oscillator is off the typical by INTERNAL_FREQ_FINE (0x63, two's
  complement) times 0.15 %: ODR_actual = 6667 * (1 + 0.0015 * FREQ_FINE) / ODR_Coeff (ST's
  application note AN5272 for the LSM6DSOX, the same formula in ST's and Qualcomm's reference
  drivers, whose table names the first code "ODR 13" with coefficient 512). The driver reads the
  trim after configuring the chip and reports the rate the samples really come at
  (:attr:`ImuInfo.rate_hz`): that is the rate the pipeline resamples from and stamps times with.
  The low-pass cut-offs (below) are quoted at the nominal rates, as in the datasheet.
- CTRL8_XL (0x17): HPCF_XL bits 7:5; with LPF2_XL_EN the accelerometer low-pass cut-off is
  ODR/10, /20, /45, /100, /200, /400, /800 for HPCF_XL = 1..7; without it the bandwidth is ODR/2.
  That is the accelerometer's filter only: ``bandwidth_hz`` (the profile's ``dlpf_hz``, the
  recording's ``filter_hz``) is the accelerometer's. The gyroscope's low-pass (CTRL4_C.LPF1_SEL_G,
  CTRL6_C.FTYPE) stays at its reset setting, LPF1 off, so its bandwidth is set by the output data
  rate. ST's reg.h names the FTYPE settings (ULTRA_LIGHT ... XTREME) without cut-offs, and
  we found no primary table of them, so we neither configure it nor report a number for it.
- Sensitivity (DS table 2): 0.061, 0.122, 0.244, 0.488 mg/LSB at 2/4/8/16 g; 8.75, 17.5, 35, 70
  mdps/LSB at 250/500/1000/2000 dps. Words are little-endian two's complement.
- The LSM6DSO32 answers the same WHO_AM_I (0x6C; ST's lsm6dso32_reg.h ``LSM6DSO32_ID 0x6C``), so the
  chip cannot tell which it is: the profile's ``sensor.chip`` does. Its registers are the same but
  its accelerometer ranges are doubled: FS_XL 00 = 4 g, 01 = 32 g, 10 = 8 g, 11 = 16 g (ST's
  ``lsm6dso32_fs_xl_t``: 4g 0x00, 8g 0x02, 16g 0x03, 32g 0x01), at 0.122, 0.976, 0.244, 0.488
  mg/LSB (ST's ``lsm6dso32_from_fs*_to_mg``; ST's Linux driver's LSM6DSO32 table; Adafruit's
  ``lsm6dso32.py``). The gyroscope is the same.
- FIFO_CTRL3 (0x09): BDR_GY bits 7:4, BDR_XL bits 3:0 (batch rates, same codes as the ODRs).
  FIFO_CTRL4 (0x0A): FIFO_MODE bits 2:0 (000 bypass = FIFO cleared, 001 FIFO, 110 continuous:
  the oldest words are overwritten when full).
- FIFO_STATUS1/2 (0x3A-0x3B): DIFF_FIFO bits 9:0 = unread words; STATUS2 bit 6 FIFO_OVR_IA,
  bit 5 FIFO_FULL_IA, bit 3 FIFO_OVR_LATCHED.
- The FIFO holds 3 KB: 512 words of 7 bytes. FIFO_DATA_OUT_TAG (0x78): TAG_SENSOR bits 7:3
  (0x01 gyroscope, 0x02 accelerometer), TAG_CNT bits 2:1 (the batch time slot: a gyro and an accel
  word with the same TAG_CNT were sampled together), TAG_PARITY bit 0; then FIFO_DATA_OUT_X_L ...
  Z_H (0x79-0x7E). A block read from 0x78 wraps from 0x7E back to 0x78, so one read moves several
  words (the Linux st_lsm6dsx driver reads 4 words = 28 bytes per transfer; so do we). Every read
  pops the words it returns, so a drain that fails part-way has lost the words it read: the next
  :meth:`Lsm6dsoxDriver.read` resets the FIFO and reports ``resync`` (a gap), like the MPU driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.errors import ConfigError, SensorNotFoundError, SensorReadError
from agent.sensors.bus import I2CBus, read_id, read_stream, transfer_error
from agent.sensors.convert import to_units
from agent.sensors.imu import FifoBatch, ImuInfo, ImuSettings, Sleep, empty_batch, nearest, pick
from agent.sensors.lsm6dsox_fifo import WORD, TagPairer

log = logging.getLogger(__name__)

FIFO_CTRL3 = 0x09
FIFO_CTRL4 = 0x0A
WHO_AM_I = 0x0F
CTRL1_XL = 0x10
CTRL2_G = 0x11
CTRL3_C = 0x12
CTRL4_C = 0x13
CTRL8_XL = 0x17
OUTX_L_G = 0x22
INTERNAL_FREQ_FINE = 0x63
FIFO_STATUS1 = 0x3A
FIFO_STATUS2 = 0x3B
FIFO_DATA_OUT_TAG = 0x78

ID_LSM6DSOX = 0x6C
ID_LSM6DS3 = 0x69
SW_RESET = 0x01
IF_INC = 0x04
BDU = 0x40
DRDY_MASK = 0x08
LPF2_XL_EN = 0x02
FIFO_BYPASS = 0b000
FIFO_CONTINUOUS = 0b110
FIFO_OVR_IA = 0x40
FIFO_FULL_IA = 0x20
FIFO_OVR_LATCHED = 0x08
WORDS_PER_READ = 4
"""FIFO words per block read (28 of the 32 bytes an SMBus block transfer allows)."""
FIFO_WORDS = 512

ODR_CODE = {12.5: 1, 26.0: 2, 52.0: 3, 104.0: 4, 208.0: 5, 416.0: 6, 833.0: 7, 1666.0: 8}
"""Nominal output data rate (the profile's ``sensor.rate_hz``) -> ODR code."""
CLOCK_HZ = 6667.0
"""The internal clock the output data rates are divided from, typical (AN5272)."""
FREQ_FINE_STEP = 0.0015
"""INTERNAL_FREQ_FINE's step: the part's clock is off the typical by this fraction per LSB."""


def true_rate_hz(odr_code: int, freq_fine: int) -> float:
    """The rate samples really come at for ``odr_code`` (1 = 12.5 Hz nominal, ...) on a part whose
    INTERNAL_FREQ_FINE reads ``freq_fine`` (the register's byte, two's complement)."""
    trim = freq_fine - 256 if freq_fine & 0x80 else freq_fine
    return CLOCK_HZ * (1 + FREQ_FINE_STEP * trim) / (1024 >> odr_code)


FS_XL = {2: 0b00, 16: 0b01, 4: 0b10, 8: 0b11}
FS_G = {250: 0b00, 500: 0b01, 1000: 0b10, 2000: 0b11}
ACCEL_MG_PER_LSB = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}
FS_XL_DSO32 = {4: 0b00, 32: 0b01, 8: 0b10, 16: 0b11}
ACCEL_MG_PER_LSB_DSO32 = {4: 0.122, 8: 0.244, 16: 0.488, 32: 0.976}
GYRO_MDPS_PER_LSB = {250: 8.75, 500: 17.5, 1000: 35.0, 2000: 70.0}
LPF2_DIVIDER = {1: 10, 2: 20, 3: 45, 4: 100, 5: 200, 6: 400, 7: 800}
"""HPCF_XL -> ODR divider of the accelerometer low-pass cut-off (LPF2_XL_EN = 1)."""


@dataclass(frozen=True)
class LsmPart:
    """What differs between the parts that answer WHO_AM_I 0x6C: the accelerometer's ranges."""

    name: str
    fs_xl: dict[int, int]
    """Full scale (g) -> FS_XL code."""
    accel_mg_per_lsb: dict[int, float]


PARTS = {
    "lsm6dsox": LsmPart("LSM6DSOX", FS_XL, ACCEL_MG_PER_LSB),
    "lsm6dso32": LsmPart("LSM6DSO32", FS_XL_DSO32, ACCEL_MG_PER_LSB_DSO32),
}
"""The profile's ``sensor.chip`` -> the part (the LSM6DSO is an LSM6DSOX here)."""


def part(chip: str) -> LsmPart:
    if chip not in PARTS:
        raise ConfigError(f"sensor.chip = {chip!r} is not one of {', '.join(PARTS)}")
    return PARTS[chip]


@dataclass(frozen=True)
class LsmPlan:
    odr_code: int
    fs_xl: int
    fs_g: int
    accel_mg_per_lsb: float
    hpcf_xl: int
    """0 = LPF2 off (bandwidth ODR/2), 1..7 = LPF2 at ODR / LPF2_DIVIDER[hpcf_xl]."""
    rate_hz: float
    bandwidth_hz: float
    """The accelerometer's low-pass cut-off; the gyroscope's filter is not configured."""

    def writes(self) -> list[tuple[int, int]]:
        """Register writes after the software reset, in order. The FIFO stays in bypass (its
        reset mode): :meth:`Lsm6dsoxDriver.open` starts it last, empty."""
        lpf2 = LPF2_XL_EN if self.hpcf_xl else 0
        return [
            (CTRL3_C, BDU | IF_INC),
            (CTRL4_C, DRDY_MASK),  # mark the samples of the filters' settling time
            (CTRL8_XL, self.hpcf_xl << 5),
            (CTRL1_XL, (self.odr_code << 4) | (self.fs_xl << 2) | lpf2),
            (CTRL2_G, (self.odr_code << 4) | (self.fs_g << 2)),
            (FIFO_CTRL3, (self.odr_code << 4) | self.odr_code),
        ]


def plan(s: ImuSettings) -> LsmPlan:
    chip = part(s.chip)
    code = ODR_CODE.get(float(s.rate_hz))
    if code is None:
        rates = ", ".join(f"{r:g}" for r in ODR_CODE)
        raise ConfigError(
            f"sensor.rate_hz = {s.rate_hz:g} is not an {chip.name} output data rate ({rates})"
        )
    odr = float(s.rate_hz)
    options = {0: odr / 2} | {k: odr / d for k, d in LPF2_DIVIDER.items()}
    bandwidth = nearest(s.dlpf_hz, options.values())
    return LsmPlan(
        odr_code=code,
        fs_xl=pick(chip.fs_xl, s.accel_range_g, "sensor.accel_range_g", "accel full scale"),
        fs_g=pick(FS_G, s.gyro_range_dps, "sensor.gyro_range_dps", "gyro full scale"),
        accel_mg_per_lsb=chip.accel_mg_per_lsb[s.accel_range_g],
        hpcf_xl=next(k for k, v in options.items() if v == bandwidth),
        rate_hz=odr,
        bandwidth_hz=bandwidth,
    )


class Lsm6dsoxDriver:
    """One LSM6DSOX (or LSM6DSO32, as ``settings.chip`` says); see the module docstring."""

    def __init__(self, bus: I2CBus, settings: ImuSettings, *, sleep: Sleep) -> None:
        self.bus = bus
        self.settings = settings
        self.part = part(settings.chip)
        self.plan = plan(settings)
        self._sleep = sleep
        self._pairer = TagPairer()
        self._desynced = False
        self._told_filter = False

    @property
    def settling_words(self) -> int:
        """FIFO words dropped as filter-settling samples since the driver was created."""
        return self._pairer.settling

    def _fail(self, exc: OSError, what: str) -> SensorReadError:
        return transfer_error(exc, self.settings.where, what)

    def identify(self) -> int:
        s = self.settings
        who = read_id(self.bus, s.address, WHO_AM_I, s.bus, s.where, "SA0 low = 0x6a, high = 0x6b")
        if who == ID_LSM6DS3:
            raise SensorNotFoundError(
                f"the chip at {s.where} is an LSM6DS3 (WHO_AM_I 0x69), which har-agent does not "
                "support; the LSM6DSOX/LSM6DSO (WHO_AM_I 0x6c) is supported"
            )
        if who != ID_LSM6DSOX:
            raise SensorNotFoundError(
                f"the chip at {s.where} is not an {self.part.name} (WHO_AM_I reads 0x{who:02x}, "
                "expected 0x6c)"
            )
        return who

    def open(self) -> ImuInfo:
        who = self.identify()
        a = self.settings.address
        try:
            self.bus.write_byte_data(a, CTRL3_C, SW_RESET)
            for _ in range(10):
                self._sleep(0.01)
                if not self.bus.read_byte_data(a, CTRL3_C) & SW_RESET:
                    break
            else:
                raise SensorReadError(f"{self.settings.where}: the chip did not finish its reset")
            for reg, value in self.plan.writes():
                self.bus.write_byte_data(a, reg, value)
            got = self.bus.read_i2c_block_data(a, CTRL1_XL, 2)
            freq_fine = self.bus.read_byte_data(a, INTERNAL_FREQ_FINE)
        except OSError as exc:
            raise self._fail(exc, "configuring the chip") from exc
        want = [value for reg, value in self.plan.writes() if reg in (CTRL1_XL, CTRL2_G)]
        if list(got) != want:
            raise SensorReadError(
                f"{self.settings.where}: configuration did not stick (CTRL1_XL/CTRL2_G read "
                f"{[hex(x) for x in got]}, wrote {[hex(x) for x in want]})"
            )
        self.reset_fifo()  # start the FIFO empty (after a re-initialisation too)
        self._pairer.restart()
        s = self.settings
        rate = true_rate_hz(self.plan.odr_code, freq_fine)
        if not self._told_filter:
            log.info(
                "%s at %s: the %g Hz output data rate is %.6g Hz on this part (6667 Hz / %d, "
                "INTERNAL_FREQ_FINE 0x%02x): samples are timed and resampled at that rate",
                self.part.name,
                s.where,
                self.plan.rate_hz,
                rate,
                1024 >> self.plan.odr_code,
                freq_fine,
            )
            # the source logs "low-pass N Hz" as if it applied to all six
            log.info(
                "%s at %s: the %g Hz low-pass is the accelerometer's; the gyroscope's filter is "
                "not configured (its bandwidth follows the %g Hz output data rate)",
                self.part.name,
                s.where,
                self.plan.bandwidth_hz,
                self.plan.rate_hz,
            )
            self._told_filter = True
        return ImuInfo(
            chip=self.part.name,
            who_am_i=who,
            rate_hz=rate,
            accel_range_g=s.accel_range_g,
            gyro_range_dps=s.gyro_range_dps,
            bandwidth_hz=self.plan.bandwidth_hz,
            fifo_samples=FIFO_WORDS // 2,
            accel_limit_g=32767 * self.plan.accel_mg_per_lsb / 1000.0,
            gyro_limit_dps=32767 * GYRO_MDPS_PER_LSB[s.gyro_range_dps] / 1000.0,
        )

    def reset_fifo(self) -> None:
        a = self.settings.address
        try:
            self.bus.write_byte_data(a, FIFO_CTRL4, FIFO_BYPASS)  # bypass empties the FIFO
            self.bus.write_byte_data(a, FIFO_CTRL4, FIFO_CONTINUOUS)
            self.bus.read_byte_data(a, FIFO_STATUS2)  # clear FIFO_OVR_LATCHED
        except OSError as exc:
            raise self._fail(exc, "resetting the FIFO") from exc
        self._pairer.clear()
        self._desynced = False

    def read(self) -> FifoBatch:
        a = self.settings.address
        if self._desynced:  # the last drain failed part-way: the words it had popped are lost
            self.reset_fifo()  # what is left would be stamped as if it followed the gap
            return empty_batch(resync=True)
        try:
            st1, st2 = self.bus.read_i2c_block_data(a, FIFO_STATUS1, 2)
            if st2 & (FIFO_OVR_IA | FIFO_OVR_LATCHED):
                self.reset_fifo()
                return empty_batch(overflow=True)
            level = st1 | ((st2 & 0b11) << 8)
            if level == 0:
                return empty_batch()
            self._desynced = True  # until the drain is read whole: every block read pops words
            data = read_stream(self.bus, a, FIFO_DATA_OUT_TAG, level * WORD, WORD * WORDS_PER_READ)
            self._desynced = False
        except OSError as exc:
            raise self._fail(exc, "reading the FIFO") from exc
        settling = self._pairer.settling
        raw = self._pairer.push(data)
        if self._pairer.settling != settling:  # normal after every start: debug only
            log.debug(
                "%s: dropped %d FIFO words the chip marked as filter settling",
                self.settings.where,
                self._pairer.settling - settling,
            )
        s = self.settings
        g_per_lsb = self.plan.accel_mg_per_lsb / 1000.0
        dps_per_lsb = GYRO_MDPS_PER_LSB[s.gyro_range_dps] / 1000.0
        return FifoBatch(to_units(raw, g_per_lsb, dps_per_lsb))
