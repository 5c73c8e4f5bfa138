"""Drivers for the TI INA219 and INA260 power monitors (the energy meter's input).

INA219 facts (datasheet SBOS448G, section 8.6 "Register Maps" and 8.5.1 "Programming"):

- 16-bit registers, most significant byte first on the wire: 0x00 configuration (resets to
  0x399F: RST bit 15, BRNG bit 13 = 32 V range, PG bits 12:11 = shunt range 40/80/160/320 mV, BADC
  bits 10:7 and SADC bits 6:3 (0011 = one 12-bit conversion), MODE bits 2:0 (111 = shunt and bus,
  continuous)); 0x01 shunt voltage (signed, 10 uV/LSB); 0x02 bus voltage (bits 15:3, 4 mV/LSB;
  CNVR bit 1; OVF bit 0 = the current or power computation overflowed); 0x03 power; 0x04 current
  (signed); 0x05 calibration (bit 0 unused).
- Calibration: Current_LSB = maximum expected current / 2^15; Cal = trunc(0.04096 / (Current_LSB x
  R_shunt)), clamped to 0xFFFE when it would not fit (I_max x R_shunt below about 20.5 mV: the
  datasheet lets Current_LSB be chosen coarser, up to I_max / 2^12); Power_LSB = 20 x Current_LSB,
  both recomputed from the Cal written. The chip computes current = shunt x Cal / 4096 and
  power = current x bus / 5000. Until Cal is written (and after a power-on reset) current and power
  read 0, so :meth:`Ina219.read` checks it and writes it again if it was lost.
- No identification register: the INA219 is recognised by its address range (0x40-0x4F) only.

INA260 facts (datasheet SBOSA69): integrated 2 mOhm shunt, no calibration; 0x01 current (signed,
1.25 mA/LSB), 0x02 bus voltage (1.25 mV/LSB), 0x03 power (10 mW/LSB), 0xFE manufacturer ID 0x5449
("TI"), 0xFF die ID: device ID 0x227 in bits 15:4, die revision in bits 3:0 (Adafruit's INA260
driver reads them as two fields, ``INA260_ID = 0x227`` and ``revision_id``), so only bits 15:4 are
compared. Other TI monitors (the INA226 family) answer 0x5449 at 0xFE too, with their own device ID.

SMBus words are little-endian, these registers big-endian: every word is swapped (:func:`swap16`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.errors import ConfigError, SensorNotFoundError, SensorReadError
from agent.sensors.bus import I2CBus, is_nack, swap16, transfer_error

CONFIG = 0x00
SHUNT_VOLTAGE = 0x01
BUS_VOLTAGE = 0x02
POWER = 0x03
CURRENT = 0x04
CALIBRATION = 0x05
RESET = 0x8000
INA219_CONFIG_DEFAULT = 0x399F
SHUNT_LSB_V = 10e-6
BUS_LSB_V = 0.004
PGA_RANGES_V = (0.04, 0.08, 0.16, 0.32)
ADC_12BIT = 0b0011
MODE_SHUNT_BUS_CONTINUOUS = 0b111

INA260_CURRENT = 0x01
INA260_BUS_VOLTAGE = 0x02
INA260_POWER = 0x03
MANUFACTURER_ID = 0xFE
DIE_ID = 0xFF
TI_ID = 0x5449
INA260_DEVICE_ID = 0x227
"""Bits 15:4 of the die ID register (bits 3:0 are the die revision)."""
INA260_DIE_ID = 0x2270
"""The whole die ID register of a revision-0 INA260 (what the emulation answers)."""
INA260_CURRENT_LSB_A = 1.25e-3
INA260_BUS_LSB_V = 1.25e-3
INA260_POWER_LSB_W = 10e-3


@dataclass(frozen=True)
class PowerReading:
    bus_v: float
    current_a: float
    power_w: float
    shunt_v: float | None = None
    overflow: bool = False
    """The chip's current/power arithmetic overflowed: the current exceeds the calibrated range."""


class PowerMonitor(Protocol):
    def open(self) -> None:
        """Check the chip is there, reset and configure it."""

    def read(self) -> PowerReading: ...


@dataclass(frozen=True)
class Ina219Calibration:
    cal: int
    current_lsb_a: float
    power_lsb_w: float
    config: int


def ina219_calibration(
    shunt_ohms: float, max_current_a: float, bus_range_v: int = 32
) -> Ina219Calibration:
    """The calibration and configuration registers for a shunt and an expected maximum current."""
    if not shunt_ohms > 0 or not max_current_a > 0:
        raise ConfigError("INA219: the shunt resistance and maximum current must be positive")
    if bus_range_v not in (16, 32):
        raise ConfigError(f"INA219: the bus voltage range is 16 or 32 V, not {bus_range_v}")
    v_shunt = max_current_a * shunt_ohms
    pg = next((i for i, r in enumerate(PGA_RANGES_V) if v_shunt <= r * (1 + 1e-9)), None)
    if pg is None:
        raise ConfigError(
            f"INA219: {max_current_a:g} A through {shunt_ohms:g} ohm is {1000 * v_shunt:g} mV, "
            "beyond the chip's 320 mV shunt range"
        )
    # Cal = trunc(0.04096 / (Current_LSB x R)) with Current_LSB = I_max / 2^15 (datasheet 8.5.1).
    # A value that does not fit the register (I_max x R below about 20.5 mV) asks for an LSB finer
    # than the chip can give: the finest it can (Cal 0xFFFE) is used, which still covers I_max.
    # Bit 0 is not stored.
    cal = min(int(0.04096 / (max_current_a / 32768 * shunt_ohms)), 0xFFFE) & 0xFFFE
    if cal <= 0:
        raise ConfigError(
            f"INA219: no calibration fits {max_current_a:g} A through {shunt_ohms:g} ohm"
        )
    current_lsb = 0.04096 / (cal * shunt_ohms)  # what the truncated calibration really gives
    config = (
        ((1 if bus_range_v == 32 else 0) << 13)
        | (pg << 11)
        | (ADC_12BIT << 7)
        | (ADC_12BIT << 3)
        | MODE_SHUNT_BUS_CONTINUOUS
    )
    return Ina219Calibration(cal, current_lsb, 20 * current_lsb, config)


def is_ina260(manufacturer_id: int, die_id: int) -> bool:
    """The ID registers (0xFE, 0xFF) of an INA260, whatever its die revision."""
    return manufacturer_id == TI_ID and die_id >> 4 == INA260_DEVICE_ID


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


class _WordChip:
    def __init__(self, bus: I2CBus, address: int, bus_number: int, name: str) -> None:
        self.bus = bus
        self.address = address
        self.name = name
        self.where = f"I2C bus {bus_number}, address 0x{address:02x}"

    def _get(self, reg: int) -> int:
        return swap16(self.bus.read_word_data(self.address, reg))

    def _put(self, reg: int, value: int) -> None:
        self.bus.write_word_data(self.address, reg, swap16(value))

    def _missing(self, exc: OSError) -> SensorNotFoundError | SensorReadError:
        if is_nack(exc):
            return SensorNotFoundError(f"no {self.name} answers at {self.where}")
        return transfer_error(exc, self.where, f"talking to the {self.name}")


class Ina219(_WordChip):
    """An INA219 with an external shunt (the common breakouts carry 0.1 ohm)."""

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x40,
        *,
        bus_number: int = 1,
        shunt_ohms: float = 0.1,
        max_current_a: float = 3.2,
        bus_range_v: int = 32,
    ) -> None:
        super().__init__(bus, address, bus_number, "INA219")
        self.calibration = ina219_calibration(shunt_ohms, max_current_a, bus_range_v)

    def open(self) -> None:
        c = self.calibration
        try:
            self._put(CONFIG, RESET)
            self._put(CONFIG, c.config)
            self._put(CALIBRATION, c.cal)
            got = self._get(CONFIG)
        except OSError as exc:
            raise self._missing(exc) from exc
        if got != c.config:
            raise SensorNotFoundError(
                f"the chip at {self.where} does not behave like an INA219 (configuration "
                f"register reads 0x{got:04x} after writing 0x{c.config:04x})"
            )

    def read(self) -> PowerReading:
        c = self.calibration
        try:
            if self._get(CALIBRATION) != c.cal:  # lost to a power-on reset: current would read 0
                self._put(CONFIG, c.config)
                self._put(CALIBRATION, c.cal)
            bus_word = self._get(BUS_VOLTAGE)
            shunt = _signed(self._get(SHUNT_VOLTAGE))
            current = _signed(self._get(CURRENT))
            power = self._get(POWER)
        except OSError as exc:
            raise transfer_error(exc, self.where, "reading the INA219") from exc
        return PowerReading(
            bus_v=(bus_word >> 3) * BUS_LSB_V,
            current_a=current * c.current_lsb_a,
            power_w=power * c.power_lsb_w,
            shunt_v=shunt * SHUNT_LSB_V,
            overflow=bool(bus_word & 0x1),
        )


class Ina260(_WordChip):
    """An INA260 (integrated shunt; identified by its manufacturer and die IDs)."""

    def __init__(self, bus: I2CBus, address: int = 0x40, *, bus_number: int = 1) -> None:
        super().__init__(bus, address, bus_number, "INA260")

    def open(self) -> None:
        try:
            maker, die = self._get(MANUFACTURER_ID), self._get(DIE_ID)
            if not is_ina260(maker, die):
                raise SensorNotFoundError(
                    f"the chip at {self.where} is not an INA260 (IDs 0x{maker:04x}/0x{die:04x}, "
                    f"expected 0x{TI_ID:04x}/0x{INA260_DEVICE_ID:03x}x)"
                )
            self._put(CONFIG, RESET)
        except OSError as exc:
            raise self._missing(exc) from exc

    def read(self) -> PowerReading:
        try:
            current = _signed(self._get(INA260_CURRENT))
            bus_word = self._get(INA260_BUS_VOLTAGE)
            power = self._get(INA260_POWER)
        except OSError as exc:
            raise transfer_error(exc, self.where, "reading the INA260") from exc
        return PowerReading(
            bus_v=bus_word * INA260_BUS_LSB_V,
            current_a=current * INA260_CURRENT_LSB_A,
            power_w=power * INA260_POWER_LSB_W,
        )
