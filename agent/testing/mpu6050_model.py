"""Register-level model of the InvenSense MPU-6050 / MPU-6500 / MPU-9250 (accel + gyro part).

What it emulates (register facts as in :mod:`agent.sensors.mpu6050`): the register file with its
reset values (every register 0x00 except WHO_AM_I and PWR_MGMT_1: 0x40, asleep, on the MPU-6050;
0x01 on the MPU-6500/9250, RM-9250 register 107), DEVICE_RESET, SLEEP,
the sample rate from SMPLRT_DIV and DLPF_CFG (1 kHz gyro output rate with the filter on, 8 kHz
with it off), the full-scale ranges, the data registers, FIFO_EN's choice of words in register
order, the FIFO (1024 or 512 bytes) that overwrites its oldest bytes when full (or, on the
MPU-6500/9250 with CONFIG.FIFO_MODE = 1, drops new ones), FIFO_OFLOW_INT in INT_STATUS (cleared on
read), FIFO_COUNT, FIFO_R_W popping bytes without advancing the register pointer (an empty FIFO
returns the last byte read, RM-6050 register 116), and FIFO_RESET (only while USER_CTRL.FIFO_EN
is 0). Not emulated: the DLPF's filtering itself, self-test, the
auxiliary I2C master, the DMP, the MPU-9250's magnetometer.

``rate_error`` makes the chip's oscillator run fast or slow (0.02 = 2 % fast). ``stick()`` freezes
the measured values (a stuck sensor).
"""

from __future__ import annotations

import math

import numpy as np

from agent.sensors import mpu6050 as m
from agent.testing.feeds import ImuFeed
from agent.testing.i2c_emulation import RegisterDevice

_TEMP_RAW = {"mpu6050": int((25.0 - 36.53) * 340), "mpu6500": int(4 * 333.87)}


class Mpu6050Model(RegisterDevice):
    def __init__(
        self,
        feed: ImuFeed,
        *,
        variant: str = "mpu6050",
        rate_error: float = 0.0,
        who_am_i: int | None = None,
    ) -> None:
        self.variant = m.VARIANTS[variant]
        who = self.variant.who_am_i[0] if who_am_i is None else who_am_i
        power = m.SLEEP if not self.variant.accel_config2 else m.CLKSEL_PLL_XGYRO
        super().__init__({m.PWR_MGMT_1: power, m.WHO_AM_I: who})
        self.feed = feed
        self.rate_error = rate_error
        self.fifo = bytearray()
        self.overflows = 0
        self.underruns = 0
        self.produced = 0
        """Samples measured since the last (re)start of the sample clock."""
        self.fifo_samples = 0
        """Samples that entered the FIFO, ever."""
        self._temp_raw = _TEMP_RAW["mpu6050" if variant == "mpu6050" else "mpu6500"]
        self._now = 0.0
        self._phase_t0: float | None = None
        self._origin: float | None = None
        self._stuck: np.ndarray | None = None
        self._last = np.zeros(6)
        self._last_fifo_byte = 0

    # -- the physical side -------------------------------------------------------------------

    def stick(self) -> None:
        """From now on every sample repeats the last one measured."""
        self._stuck = self._last.copy()

    def unstick(self) -> None:
        self._stuck = None

    @property
    def sample_rate_hz(self) -> float:
        base = 8000.0 if self.regs[m.CONFIG] & 0x07 in (0, 7) else 1000.0
        return base / (1 + self.regs[m.SMPLRT_DIV]) * (1 + self.rate_error)

    @property
    def sampling(self) -> bool:
        return not self.regs[m.PWR_MGMT_1] & m.SLEEP

    def _restart_clock(self) -> None:
        self._phase_t0 = self._now if self.sampling else None
        self.produced = 0

    def sync(self, now: float) -> None:
        self._now = max(self._now, now)
        if self._phase_t0 is None:
            return
        rate = self.sample_rate_hz
        due = math.floor((self._now - self._phase_t0) * rate + 1e-9)
        k = due - self.produced
        if k <= 0:
            return
        times = self._phase_t0 + (self.produced + 1 + np.arange(k)) / rate
        self.produced = due
        fifo_on = self.regs[m.USER_CTRL] & m.USER_FIFO_EN and self.regs[m.FIFO_EN]
        if fifo_on and self._origin is None:
            self._origin = float(times[0])
        origin = self._origin if self._origin is not None else float(times[0])
        values = self.feed.sample(times - origin)
        if self._stuck is not None:
            values = np.tile(self._stuck, (k, 1))
        self._last = values[-1].copy()
        raw = self._quantize(values)
        self._set_data_registers(raw[-1])
        if fifo_on:
            self._push(raw)

    def _quantize(self, values: np.ndarray) -> np.ndarray:
        afs = (self.regs[m.ACCEL_CONFIG] >> 3) & 0b11
        fs = (self.regs[m.GYRO_CONFIG] >> 3) & 0b11
        a_lsb = list(m.ACCEL_LSB_PER_G.values())[afs]
        g_lsb = list(m.GYRO_LSB_PER_DPS.values())[fs]
        raw = np.empty(values.shape, dtype=np.int64)
        raw[:, :3] = np.rint(values[:, :3] * a_lsb)
        raw[:, 3:] = np.rint(np.degrees(values[:, 3:]) * g_lsb)
        return np.clip(raw, -32768, 32767)

    def _set_data_registers(self, raw: np.ndarray) -> None:
        block = np.concatenate([raw[:3], [self._temp_raw], raw[3:]]).astype(">i2").tobytes()
        self.regs[m.ACCEL_XOUT_H : m.ACCEL_XOUT_H + 14] = block

    def _push(self, raw: np.ndarray) -> None:
        en = self.regs[m.FIFO_EN]
        cols: list[np.ndarray] = []
        if en & 0x08:  # ACCEL_FIFO_EN: registers 59-64
            cols += [raw[:, 0], raw[:, 1], raw[:, 2]]
        if en & 0x80:  # TEMP_FIFO_EN: registers 65-66
            cols.append(np.full(len(raw), self._temp_raw))
        for bit, col in ((0x40, 3), (0x20, 4), (0x10, 5)):  # XG, YG, ZG: registers 67-72
            if en & bit:
                cols.append(raw[:, col])
        if not cols:
            return
        data = np.stack(cols, axis=1).astype(">i2").tobytes()
        self.fifo_samples += len(raw)
        cap = self.variant.fifo_bytes
        self.fifo += data
        if len(self.fifo) > cap:
            self.overflows += 1
            if self.variant.accel_config2 and self.regs[m.CONFIG] & 0x40:  # FIFO_MODE = 1
                del self.fifo[cap:]
            else:
                del self.fifo[: len(self.fifo) - cap]
            if self.regs[m.INT_ENABLE] & m.FIFO_OFLOW:
                self.regs[m.INT_STATUS] |= m.FIFO_OFLOW

    # -- the register side -------------------------------------------------------------------

    def next_register(self, reg: int) -> int:
        return reg if reg == m.FIFO_R_W else (reg + 1) & 0xFF

    def read_register(self, reg: int) -> int:
        if reg == m.INT_STATUS:
            value = self.regs[reg]
            self.regs[reg] = 0
            return value
        count = len(self.fifo) & self.variant.count_mask
        if reg == m.FIFO_COUNT_H:
            return count >> 8
        if reg == m.FIFO_COUNT_H + 1:
            return count & 0xFF
        if reg == m.FIFO_R_W:
            if not self.fifo:
                self.underruns += 1
                return self._last_fifo_byte
            value = self._last_fifo_byte = self.fifo[0]
            del self.fifo[0]
            return value
        return super().read_register(reg)

    def write_register(self, reg: int, value: int) -> None:
        if reg in (m.WHO_AM_I, m.INT_STATUS, m.FIFO_COUNT_H, m.FIFO_COUNT_H + 1):
            return  # read-only
        if reg == m.PWR_MGMT_1 and value & m.DEVICE_RESET:
            self.reset_registers()
            self.fifo.clear()
            self._restart_clock()
            return
        if reg == m.USER_CTRL:
            if value & m.USER_FIFO_RESET and not value & m.USER_FIFO_EN:
                self.fifo.clear()
            value &= 0xF8  # FIFO_RESET, I2C_MST_RESET, SIG_COND_RESET clear themselves
        if reg == m.FIFO_R_W:
            return
        super().write_register(reg, value)
        if reg in (m.PWR_MGMT_1, m.SMPLRT_DIV, m.CONFIG):
            self._restart_clock()
