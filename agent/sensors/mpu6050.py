"""Driver for the InvenSense MPU-6050 family (MPU-6050, MPU-6500, MPU-9250 accel/gyro part).

Register facts, cited by register number, come from the MPU-6000/MPU-6050 Register Map and
Descriptions (RM-MPU-6000A-00 rev 4.2, "RM-6050" below), the MPU-6050 Product Specification
(PS-MPU-6000A-00 rev 3.4, "PS-6050") and, where the later parts differ, the MPU-6500 / MPU-9250
register maps (RM-MPU-6500A-00, RM-MPU-9250A-00, "RM-6500"):

- WHO_AM_I (117, 0x75) reads 0x68 (MPU-6050/6000), 0x70 (MPU-6500), 0x71 (MPU-9250), 0x73
  (MPU-9255, register-compatible with the MPU-9250).
- PWR_MGMT_1 (107, 0x6B) resets to 0x40 (SLEEP); DEVICE_RESET (bit 7) restores every register and
  clears itself; CLKSEL = 1 takes the clock from the X gyro PLL, which RM-6050 recommends over the
  internal oscillator.
- Sample rate = gyro output rate / (1 + SMPLRT_DIV (25, 0x19)); the gyro output rate is 1 kHz when
  the digital low-pass filter is on (CONFIG (26, 0x1A) DLPF_CFG 1..6), which is how we run it.
- GYRO_CONFIG (27, 0x1B) FS_SEL bits 4:3 = 250/500/1000/2000 deg/s; ACCEL_CONFIG (28, 0x1C)
  AFS_SEL bits 4:3 = 2/4/8/16 g. Sensitivities (PS-6050 sections 6.1, 6.2): 131, 65.5, 32.8,
  16.4 LSB/(deg/s) and 16384, 8192, 4096, 2048 LSB/g. The MPU-6500/9250 have the same scales and a
  separate accelerometer filter in ACCEL_CONFIG2 (29, 0x1D) A_DLPF_CFG bits 2:0 (RM-6500).
- FIFO_EN (35, 0x23): XG/YG/ZG_FIFO_EN bits 6:4, ACCEL_FIFO_EN bit 3. Data enter the FIFO in
  register order: ACCEL_XOUT_H (59) ... ACCEL_ZOUT_L (64), then GYRO_XOUT_H (67) ... (72), each word
  big-endian two's complement: 12 bytes per sample.
- INT_ENABLE (56, 0x38) FIFO_OFLOW_EN bit 4; INT_STATUS (58, 0x3A) FIFO_OFLOW_INT bit 4, cleared
  when INT_STATUS is read.
- USER_CTRL (106, 0x6A): FIFO_EN bit 6; FIFO_RESET bit 2 resets the FIFO when written while
  FIFO_EN is 0, and clears itself. The sensors' routing into the FIFO (FIFO_EN, 35) is switched off
  around the reset, as InvenSense's own driver (eMPL ``mpu_reset_fifo``), Linux
  (``inv_mpu6050_prepare_fifo``) and ArduPilot do ("disable all FIFO channels before doing the
  reset"): a frame written while the FIFO resets could leave a torn frame at its head, and every
  frame after it out of step.
- FIFO_COUNT_H/L (114-115, 0x72-0x73): bytes in the FIFO, big-endian (13 bits on the MPU-6500);
  FIFO_R_W (116, 0x74) pops bytes without advancing the register pointer, so a block read there
  streams the FIFO. Capacity 1024 bytes (MPU-6050), 512 bytes (MPU-6500/9250). When full the oldest
  bytes are overwritten; 1024 is not a multiple of 12, so after an overflow sample boundaries are
  lost: the only safe recovery is a FIFO reset, which is what :meth:`Mpu6050Driver.read` does.
  A sample that arrives while the FIFO is being drained can overflow it too (the count was read
  first), so the overflow flag is read again after the drain and such a batch is dropped.
- Start-up: the gyro needs time to settle after it wakes (Linux ``INV_MPU6050_GYRO_STARTUP_TIME``
  60 ms, ``INV_MPU6500_GYRO_STARTUP_TIME`` 70 ms; eMPL waits 50 ms): :meth:`Mpu6050Driver.open`
  waits :data:`SETTLE_S` after configuring the chip and only then starts the FIFO, so the samples
  of the settling time are never read (after a re-initialisation too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.errors import ConfigError, SensorNotFoundError, SensorReadError
from agent.sensors.bus import I2CBus, read_id, read_stream, transfer_error
from agent.sensors.convert import to_units, words
from agent.sensors.imu import FifoBatch, ImuInfo, ImuSettings, Sleep, empty_batch, nearest, pick

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_CONFIG2 = 0x1D  # MPU-6500/9250 only
FIFO_EN = 0x23
INT_ENABLE = 0x38
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
GYRO_XOUT_H = 0x43
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
FIFO_COUNT_H = 0x72
FIFO_R_W = 0x74
WHO_AM_I = 0x75

DEVICE_RESET = 0x80
SLEEP = 0x40
CLKSEL_PLL_XGYRO = 0x01
FIFO_OFLOW = 0x10  # INT_ENABLE.FIFO_OFLOW_EN and INT_STATUS.FIFO_OFLOW_INT
FIFO_ACCEL_GYRO = 0x78  # FIFO_EN: XG | YG | ZG | ACCEL
USER_FIFO_EN = 0x40
USER_FIFO_RESET = 0x04

FRAME = 12
"""Bytes per FIFO sample: accel x y z, gyro x y z, 16 bits each."""
GYRO_RATE_HZ = 1000.0
"""Gyro output rate with the DLPF on: the sample rate divider's input."""
RESET_WAIT_S = 0.1
SETTLE_S = 0.07
"""Wait after waking and configuring the chip before its samples are used (the longest gyro
start-up time of the family, Linux's 70 ms for the MPU-6500)."""

ACCEL_LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
GYRO_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}
AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}
FS_SEL = {250: 0, 500: 1, 1000: 2, 2000: 3}


@dataclass(frozen=True)
class MpuVariant:
    name: str
    who_am_i: tuple[int, ...]
    fifo_bytes: int
    count_mask: int
    accel_config2: bool
    dlpf_hz: dict[int, float]
    """DLPF_CFG 1..6 -> gyro bandwidth (Hz); the accelerometer filter is set to the same index."""


MPU6050 = MpuVariant(
    "MPU-6050",
    (0x68,),
    1024,
    0xFFFF,
    False,
    {1: 188.0, 2: 98.0, 3: 42.0, 4: 20.0, 5: 10.0, 6: 5.0},  # RM-6050 register 26 table
)
MPU6500 = MpuVariant(
    "MPU-6500",
    (0x70,),
    512,
    0x1FFF,
    True,
    {1: 184.0, 2: 92.0, 3: 41.0, 4: 20.0, 5: 10.0, 6: 5.0},  # RM-6500 CONFIG, FCHOICE_B = 00
)
MPU9250 = MpuVariant("MPU-9250", (0x71, 0x73), 512, 0x1FFF, True, MPU6500.dlpf_hz)
VARIANTS = {"mpu6050": MPU6050, "mpu6500": MPU6500, "mpu9250": MPU9250}


@dataclass(frozen=True)
class MpuPlan:
    """Register values for the profile's settings (pure; ConfigError if the chip cannot do them)."""

    smplrt_div: int
    dlpf_cfg: int
    fs_sel: int
    afs_sel: int
    rate_hz: float
    bandwidth_hz: float

    def writes(self, variant: MpuVariant) -> list[tuple[int, int]]:
        """Register writes after the reset, in order: wake on the gyro PLL, filter, rate, ranges,
        overflow flag. The FIFO is started apart (:data:`FIFO_START`), once the sensors settled."""
        out = [
            (PWR_MGMT_1, CLKSEL_PLL_XGYRO),
            (CONFIG, self.dlpf_cfg),
            (SMPLRT_DIV, self.smplrt_div),
            (GYRO_CONFIG, self.fs_sel << 3),
            (ACCEL_CONFIG, self.afs_sel << 3),
        ]
        if variant.accel_config2:
            out.append((ACCEL_CONFIG2, self.dlpf_cfg))  # ACCEL_FCHOICE_B = 0: A_DLPF_CFG applies
        out.append((INT_ENABLE, FIFO_OFLOW))
        return out


FIFO_START = (
    (FIFO_EN, 0),  # nothing routed into the FIFO while it resets
    (USER_CTRL, 0),
    (USER_CTRL, USER_FIFO_RESET),  # (FIFO_EN 0 in the same write: the reset takes effect)
    (USER_CTRL, USER_FIFO_EN),
    (FIFO_EN, FIFO_ACCEL_GYRO),
)
"""Writes that empty the FIFO and start it again with accel and gyro frames (see the module
docstring for why the routing is off during the reset)."""


def plan(variant: MpuVariant, s: ImuSettings) -> MpuPlan:
    exact = GYRO_RATE_HZ / s.rate_hz - 1
    div = round(exact)
    if not 0 <= div <= 255 or abs(GYRO_RATE_HZ / (1 + div) - s.rate_hz) > 1e-6 * s.rate_hz:
        below = min(255, max(0, math.floor(exact)))
        options = sorted({GYRO_RATE_HZ / (1 + below), GYRO_RATE_HZ / (1 + min(255, below + 1))})
        raise ConfigError(
            f"sensor.rate_hz = {s.rate_hz:g} is not a rate the {variant.name} makes: it runs at "
            f"1000 / (1 + n) Hz for n = 0..255 (nearest: "
            f"{' or '.join(f'{o:.4g}' for o in options)})"
        )
    bandwidth = nearest(s.dlpf_hz, variant.dlpf_hz.values())
    cfg = next(k for k, v in variant.dlpf_hz.items() if v == bandwidth)
    return MpuPlan(
        smplrt_div=div,
        dlpf_cfg=cfg,
        fs_sel=pick(FS_SEL, s.gyro_range_dps, "sensor.gyro_range_dps", "gyro full scale"),
        afs_sel=pick(AFS_SEL, s.accel_range_g, "sensor.accel_range_g", "accel full scale"),
        rate_hz=GYRO_RATE_HZ / (1 + div),
        bandwidth_hz=bandwidth,
    )


def decode_fifo(data: bytes, accel_range_g: int, gyro_range_dps: int) -> FifoBatch:
    """Whole 12-byte FIFO frames (big-endian words) to samples in g and rad/s."""
    raw = words(data, 6, big_endian=True)
    return FifoBatch(
        to_units(raw, 1.0 / ACCEL_LSB_PER_G[accel_range_g], 1.0 / GYRO_LSB_PER_DPS[gyro_range_dps])
    )


def variant_by_id(who_am_i: int) -> MpuVariant | None:
    return next((v for v in VARIANTS.values() if who_am_i in v.who_am_i), None)


class Mpu6050Driver:
    """One MPU-6050-family chip on a bus; see the module docstring for the register facts."""

    def __init__(self, bus: I2CBus, settings: ImuSettings, *, sleep: Sleep) -> None:
        self.bus = bus
        self.settings = settings
        self.variant = VARIANTS[settings.chip]
        self.plan = plan(self.variant, settings)  # bad settings fail before any transfer
        self._sleep = sleep
        self._desynced = False
        """A FIFO stream read failed part-way: reset the FIFO before trusting it again."""

    def _fail(self, exc: OSError, what: str) -> SensorReadError:
        return transfer_error(exc, self.settings.where, what)

    def identify(self) -> int:
        s = self.settings
        who = read_id(self.bus, s.address, WHO_AM_I, s.bus, s.where, "AD0 high = 0x69")
        if who not in self.variant.who_am_i:
            other = variant_by_id(who)
            if other is not None:
                key = next(k for k, v in VARIANTS.items() if v is other)
                raise SensorNotFoundError(
                    f"the chip at {s.where} is an {other.name} (WHO_AM_I 0x{who:02x}), but "
                    f'sensor.chip is {s.chip!r}; set sensor.chip = "{key}"'
                )
            raise SensorNotFoundError(
                f"the chip at {s.where} is not an {self.variant.name} (WHO_AM_I reads "
                f"0x{who:02x}, expected 0x{self.variant.who_am_i[0]:02x})"
            )
        return who

    def open(self) -> ImuInfo:
        self._desynced = False  # the device reset below empties the FIFO
        who = self.identify()
        a = self.settings.address
        try:
            self.bus.write_byte_data(a, PWR_MGMT_1, DEVICE_RESET)
            self._sleep(RESET_WAIT_S)
            for _ in range(10):
                if not self.bus.read_byte_data(a, PWR_MGMT_1) & DEVICE_RESET:
                    break
                self._sleep(0.01)
            else:
                raise SensorReadError(f"{self.settings.where}: the chip did not finish its reset")
            for reg, value in self.plan.writes(self.variant):
                self.bus.write_byte_data(a, reg, value)
            got = self.bus.read_i2c_block_data(a, SMPLRT_DIV, 4)
        except OSError as exc:
            raise self._fail(exc, "configuring the chip") from exc
        p = self.plan
        want = [p.smplrt_div, p.dlpf_cfg, p.fs_sel << 3, p.afs_sel << 3]
        if list(got) != want:
            raise SensorReadError(
                f"{self.settings.where}: configuration did not stick (registers 0x19-0x1c read "
                f"{[hex(x) for x in got]}, wrote {[hex(x) for x in want]})"
            )
        self._sleep(SETTLE_S)  # the gyro settles; nothing enters the FIFO yet
        self.reset_fifo()
        s = self.settings
        return ImuInfo(
            chip=self.variant.name,
            who_am_i=who,
            rate_hz=self.plan.rate_hz,
            accel_range_g=s.accel_range_g,
            gyro_range_dps=s.gyro_range_dps,
            bandwidth_hz=self.plan.bandwidth_hz,
            fifo_samples=self.variant.fifo_bytes // FRAME,
            accel_limit_g=32767 / ACCEL_LSB_PER_G[s.accel_range_g],
            gyro_limit_dps=32767 / GYRO_LSB_PER_DPS[s.gyro_range_dps],
        )

    def reset_fifo(self) -> None:
        a = self.settings.address
        try:
            for reg, value in FIFO_START:
                self.bus.write_byte_data(a, reg, value)
            self.bus.read_byte_data(a, INT_STATUS)  # clear a stale overflow flag
        except OSError as exc:
            raise self._fail(exc, "resetting the FIFO") from exc
        self._desynced = False

    def read(self) -> FifoBatch:
        a = self.settings.address
        if self._desynced:  # the last read failed inside the FIFO: its frames may be out of step
            self.reset_fifo()
            self._desynced = False
            return empty_batch(resync=True)
        try:
            status = self.bus.read_byte_data(a, INT_STATUS)
            hi, lo = self.bus.read_i2c_block_data(a, FIFO_COUNT_H, 2)
            count = ((hi << 8) | lo) & self.variant.count_mask
            if status & FIFO_OFLOW or count >= self.variant.fifo_bytes:
                self.reset_fifo()
                return empty_batch(overflow=True)
            n = count // FRAME
            if n == 0:
                return empty_batch()
            self._desynced = True  # until the whole stream is read: frames are 12 bytes
            data = read_stream(self.bus, a, FIFO_R_W, n * FRAME)
            # a sample that came while we drained can have overflowed the FIFO: its oldest bytes,
            # which we had not read yet, are gone and the frames we read are out of step
            overflowed = self.bus.read_byte_data(a, INT_STATUS) & FIFO_OFLOW
            self._desynced = False
        except OSError as exc:
            raise self._fail(exc, "reading the FIFO") from exc
        if overflowed:
            self.reset_fifo()
            return empty_batch(overflow=True)
        return decode_fifo(data, self.settings.accel_range_g, self.settings.gyro_range_dps)
