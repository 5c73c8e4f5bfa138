"""Register-level model of the ST LSM6DSOX (register facts as in :mod:`agent.sensors.lsm6dsox`), or
of the LSM6DSO32 (``part="lsm6dso32"``: the same registers and WHO_AM_I, other accelerometer
ranges).

Emulated: WHO_AM_I, the reset values (CTRL3_C = 0x04, IF_INC on), SW_RESET, IF_INC (without it the
register pointer does not advance), the output data rate and full-scale fields of CTRL1_XL and
CTRL2_G, the output registers, FIFO_CTRL3 batch rates, FIFO_CTRL4 modes (bypass clears the FIFO,
FIFO mode stops when full, continuous mode overwrites the oldest word), the 512-word FIFO of tagged
7-byte words (a gyroscope then an accelerometer word per sample, sharing a TAG_CNT slot),
FIFO_STATUS1/2 (DIFF_FIFO, FIFO_FULL_IA, FIFO_OVR_IA, FIFO_OVR_LATCHED cleared when read), the
FIFO output port that wraps from 0x7E back to 0x78, and the filters' settling time: the first
``settling_samples`` samples after each (re)start of the sensors (software reset, a write to
CTRL1_XL or CTRL2_G) go into the FIFO as 0x7FFE markers when CTRL4_C.DRDY_MASK is set, as Linux
st_lsm6dsx describes the chip doing ("values greater than 0x7ffd"), and otherwise as unsettled
values (a ramp from 0 to the true value, an illustration: the real transient is not modelled). The
real chip's count depends on the rate and filters and differs between the accelerometer and the
gyroscope; the model uses one count for both, 0 unless asked for, and leaves the output registers
alone. The part's clock: samples come at 6667 Hz / ODR_Coeff, off by the INTERNAL_FREQ_FINE trim
the model is given. Not emulated: the filters themselves, the accelerometer and gyroscope running
at different rates or batching at a decimated rate (refused with an :class:`EmulationError`),
timestamps, compression, the embedded functions.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from agent.sensors import lsm6dsox as s
from agent.sensors import lsm6dsox_fifo as fifo
from agent.testing.feeds import ImuFeed
from agent.testing.i2c_emulation import RegisterDevice

ODR_COEFF = {1: 512, 2: 256, 3: 128, 4: 64, 5: 32, 6: 16, 7: 8, 8: 4, 9: 2, 10: 1}
"""ODR code -> divider of the 6667 Hz internal clock (AN5272; "12.5 Hz" is 13.02 Hz), written down
here rather than taken from the driver, so that the model checks the driver's arithmetic."""
CLOCK_HZ = 6667.0
INTERNAL_FREQ_FINE = 0x63
FS_G_DPS = {code: dps for dps, code in s.FS_G.items()}
ACCEL_FS = {
    "lsm6dsox": {0b00: 0.061, 0b01: 0.488, 0b10: 0.122, 0b11: 0.244},
    "lsm6dso32": {0b00: 0.122, 0b01: 0.976, 0b10: 0.244, 0b11: 0.488},
}
"""Part -> FS_XL code -> mg/LSB (2/16/4/8 g on the LSM6DSOX, 4/32/8/16 g on the LSM6DSO32; see
the driver's docstring for the sources), written down here rather than taken from the driver, so
that the model checks the driver's tables."""
CTRL4_C = 0x13
DRDY_MASK = 0x08
"""CTRL4_C bit 3 (ST's lsm6dsox_reg.h ``drdy_mask``), written down here rather than taken from the
driver, so that the model checks the driver's value."""


class EmulationError(Exception):
    """The driver asked for something this model does not emulate."""


class Lsm6dsoxModel(RegisterDevice):
    def __init__(
        self,
        feed: ImuFeed,
        *,
        rate_error: float = 0.0,
        who_am_i: int = 0x6C,
        settling_samples: int = 0,
        part: str = "lsm6dsox",
        freq_fine: int = 0,
    ) -> None:
        """``part``: ``lsm6dso32`` reads the FS_XL codes as that part's ranges (same WHO_AM_I).
        ``freq_fine``: this part's clock trim, -128..127 (INTERNAL_FREQ_FINE, read-only): its
        clock runs at 6667 Hz * (1 + 0.0015 * freq_fine). ``rate_error``: a further error of the
        clock that the trim does not tell (temperature, ageing)."""
        if not -128 <= freq_fine <= 127:
            raise ValueError(f"freq_fine must fit a signed byte, got {freq_fine}")
        super().__init__(
            {s.WHO_AM_I: who_am_i, s.CTRL3_C: s.IF_INC, INTERNAL_FREQ_FINE: freq_fine & 0xFF}
        )
        self.freq_fine = freq_fine
        self._accel_mg_per_lsb = ACCEL_FS[part]
        self.feed = feed
        self.rate_error = rate_error
        self.settling_samples = settling_samples
        """Samples after each start of the sensors that the filters are settling (see above)."""
        self.fifo: deque[bytes] = deque()
        self.overflows = 0
        self.produced = 0
        self.fifo_samples = 0
        self._now = 0.0
        self._phase_t0: float | None = None
        self._origin: float | None = None
        self._slot = 0
        self._word = bytes(7)
        self._overrun = False
        self._latched = False
        self._stuck: np.ndarray | None = None
        self._last = np.zeros(6)

    def stick(self) -> None:
        self._stuck = self._last.copy()

    def unstick(self) -> None:
        self._stuck = None

    @property
    def odr_code(self) -> int:
        xl, g = self.regs[s.CTRL1_XL] >> 4, self.regs[s.CTRL2_G] >> 4
        if xl and g and xl != g:
            raise EmulationError("accelerometer and gyroscope at different rates")
        return xl or g

    @property
    def rate_hz(self) -> float:
        """The rate this part makes samples at, at the configured ODR code."""
        clock = CLOCK_HZ * (1 + 0.0015 * self.freq_fine) * (1 + self.rate_error)
        return clock / ODR_COEFF[self.odr_code]

    @property
    def fifo_mode(self) -> int:
        return self.regs[s.FIFO_CTRL4] & 0b111

    def _restart_clock(self) -> None:
        code = self.odr_code
        self._phase_t0 = self._now if code else None
        self.produced = 0

    def sync(self, now: float) -> None:
        self._now = max(self._now, now)
        if self._phase_t0 is None:
            return
        rate = self.rate_hz
        due = math.floor((self._now - self._phase_t0) * rate + 1e-9)
        k = due - self.produced
        if k <= 0:
            return
        since_start = self.produced + np.arange(k)  # 0 = the first sample after the start
        times = self._phase_t0 + (since_start + 1) / rate
        self.produced = due
        batching = self.fifo_mode != s.FIFO_BYPASS and self.regs[s.FIFO_CTRL3]
        if batching and self._origin is None:
            self._origin = float(times[0])
        origin = self._origin if self._origin is not None else float(times[0])
        values = self.feed.sample(times - origin)
        if self._stuck is not None:
            values = np.tile(self._stuck, (k, 1))
        self._last = values[-1].copy()
        raw = self._quantize(values)
        self.regs[s.OUTX_L_G : s.OUTX_L_G + 12] = (
            np.concatenate([raw[-1, 3:], raw[-1, :3]]).astype("<i2").tobytes()
        )
        if batching:
            self._push(self._settling(raw, since_start))

    def _quantize(self, values: np.ndarray) -> np.ndarray:
        mg_per_lsb = self._accel_mg_per_lsb[(self.regs[s.CTRL1_XL] >> 2) & 0b11]
        dps = FS_G_DPS[(self.regs[s.CTRL2_G] >> 2) & 0b11]
        raw = np.empty(values.shape, dtype=np.int64)
        raw[:, :3] = np.rint(values[:, :3] * 1000.0 / mg_per_lsb)
        raw[:, 3:] = np.rint(np.degrees(values[:, 3:]) * 1000.0 / s.GYRO_MDPS_PER_LSB[dps])
        return np.clip(raw, -32768, 32767)

    def _settling(self, raw: np.ndarray, since_start: np.ndarray) -> np.ndarray:
        """The FIFO's view of samples ``since_start`` samples after the sensors started."""
        n = self.settling_samples
        unsettled = since_start < n
        if not unsettled.any():
            return raw
        raw = raw.copy()
        if self.regs[CTRL4_C] & DRDY_MASK:
            raw[unsettled] = 0x7FFE
        else:
            ramp = (since_start[unsettled] + 1) / (n + 1)
            raw[unsettled] = np.rint(raw[unsettled] * ramp[:, None]).astype(raw.dtype)
        return raw

    def _push(self, raw: np.ndarray) -> None:
        bdr = self.regs[s.FIFO_CTRL3]
        bdr_gy, bdr_xl = bdr >> 4, bdr & 0x0F
        for code in (bdr_gy, bdr_xl):
            if code and code != self.odr_code:
                raise EmulationError("batching at a rate other than the output data rate")
        for row in raw:
            words = []
            if bdr_gy:
                words.append(self._word_of(fifo.TAG_GYRO, row[3:]))
            if bdr_xl:
                words.append(self._word_of(fifo.TAG_ACCEL, row[:3]))
            self._slot = (self._slot + 1) & 0b11
            self.fifo_samples += 1
            for word in words:
                if len(self.fifo) >= s.FIFO_WORDS:
                    if self.fifo_mode == 0b001:  # FIFO mode: stop collecting when full
                        continue
                    self.fifo.popleft()  # continuous mode: overwrite the oldest
                    if not self._overrun:
                        self.overflows += 1
                    self._overrun = self._latched = True
                self.fifo.append(word)

    def _word_of(self, sensor: int, xyz: np.ndarray) -> bytes:
        tag = (sensor << 3) | (self._slot << 1)
        tag |= bin(tag).count("1") & 1  # TAG_PARITY: even parity over the byte
        return bytes([tag]) + xyz.astype("<i2").tobytes()

    def next_register(self, reg: int) -> int:
        if not self.regs[s.CTRL3_C] & s.IF_INC:
            return reg
        return s.FIFO_DATA_OUT_TAG if reg == s.FIFO_DATA_OUT_TAG + 6 else (reg + 1) & 0xFF

    def read_register(self, reg: int) -> int:
        level = len(self.fifo)
        if reg == s.FIFO_STATUS1:
            return level & 0xFF
        if reg == s.FIFO_STATUS2:
            value = (level >> 8) & 0b11
            value |= s.FIFO_OVR_LATCHED if self._latched else 0
            value |= s.FIFO_FULL_IA if level >= s.FIFO_WORDS else 0
            value |= s.FIFO_OVR_IA if self._overrun else 0
            self._latched = False
            return value
        if reg == s.FIFO_DATA_OUT_TAG:
            if self.fifo:
                self._word = self.fifo.popleft()
                self._overrun = False
            else:
                self._word = bytes(7)
            return self._word[0]
        if s.FIFO_DATA_OUT_TAG < reg <= s.FIFO_DATA_OUT_TAG + 6:
            return self._word[reg - s.FIFO_DATA_OUT_TAG]
        return super().read_register(reg)

    def write_register(self, reg: int, value: int) -> None:
        read_only = (s.WHO_AM_I, s.FIFO_STATUS1, s.FIFO_STATUS2, INTERNAL_FREQ_FINE)
        if reg in read_only or reg >= s.FIFO_DATA_OUT_TAG:
            return  # read-only
        if reg == s.CTRL3_C and value & s.SW_RESET:
            self.reset_registers()
            self._clear_fifo()
            self._restart_clock()
            return
        if reg == s.CTRL3_C:
            value &= 0x7F  # BOOT clears itself
        super().write_register(reg, value)
        if reg == s.FIFO_CTRL4 and value & 0b111 == s.FIFO_BYPASS:
            self._clear_fifo()
        if reg in (s.CTRL1_XL, s.CTRL2_G):
            self._restart_clock()

    def _clear_fifo(self) -> None:
        self.fifo.clear()
        self._overrun = self._latched = False
