"""``har-agent sensors probe``: which supported chips answer on a bus, and where.

Only the addresses the supported chips can have are visited, and only with reads of their
identification registers (no blind writes):

- 0x68, 0x69: WHO_AM_I (0x75) of the InvenSense MPU family;
- 0x6A, 0x6B: WHO_AM_I (0x0F) of the ST LSM6DS family (0x6C answers for the LSM6DSOX, the LSM6DSO
  and the LSM6DSO32 alike: only the part marking tells them apart);
- 0x40-0x4F: manufacturer/die ID (0xFE/0xFF) of the TI INA260 (device ID 0x227 in bits 15:4 of the
  die ID, any revision in bits 3:0). Another die ID with TI's manufacturer ID is another TI monitor
  (the INA226 family has these registers too), reported as not supported; a device without TI's
  manufacturer ID is reported as an INA219, which has no identification register.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sensors import ina219, lsm6dsox, mpu6050
from agent.sensors.bus import I2CBus, describe, is_nack, swap16

MPU_ADDRESSES = (0x68, 0x69)
LSM_ADDRESSES = (0x6A, 0x6B)
INA_ADDRESSES = tuple(range(0x40, 0x50))
MPU_NAMES = {0x68: "MPU-6050", 0x70: "MPU-6500", 0x71: "MPU-9250", 0x73: "MPU-9255"}
LSM_NAMES = {0x6C: "LSM6DSOX/LSM6DSO/LSM6DSO32", 0x69: "LSM6DS3"}


@dataclass(frozen=True)
class Found:
    address: int
    chip: str
    """Name of the chip, or ``unknown``."""
    chip_key: str
    """The profile's ``sensor.chip`` for a supported IMU; empty otherwise."""
    detail: str

    def line(self) -> str:
        key = f'  (sensor.chip = "{self.chip_key}")' if self.chip_key else ""
        return f"0x{self.address:02x}  {self.chip:<18} {self.detail}{key}"


def _read_id(bus: I2CBus, address: int, register: int) -> int | str | None:
    """The ID byte, None when nobody acknowledges, or the error text of a failed transfer."""
    try:
        return bus.read_byte_data(address, register)
    except OSError as exc:
        return None if is_nack(exc) else describe(exc)


def scan(bus: I2CBus) -> list[Found]:
    found: list[Found] = []
    for address in MPU_ADDRESSES:
        who = _read_id(bus, address, mpu6050.WHO_AM_I)
        if who is None:
            continue
        if isinstance(who, str):
            found.append(Found(address, "unknown", "", f"answers, but WHO_AM_I fails: {who}"))
            continue
        name = MPU_NAMES.get(who, "unknown")
        key = {0x68: "mpu6050", 0x70: "mpu6500", 0x71: "mpu9250", 0x73: "mpu9250"}.get(who, "")
        found.append(Found(address, name, key, f"WHO_AM_I 0x{who:02x}"))
    for address in LSM_ADDRESSES:
        who = _read_id(bus, address, lsm6dsox.WHO_AM_I)
        if who is None:
            continue
        if isinstance(who, str):
            found.append(Found(address, "unknown", "", f"answers, but WHO_AM_I fails: {who}"))
            continue
        name = LSM_NAMES.get(who, "unknown")
        key = "lsm6dsox" if who == lsm6dsox.ID_LSM6DSOX else ""
        note = {
            lsm6dsox.ID_LSM6DS3: " (not supported)",
            lsm6dsox.ID_LSM6DSOX: (
                ' (shared by these parts: check the part marking; an LSM6DSO32 is "lsm6dso32")'
            ),
        }.get(who, "")
        found.append(Found(address, name, key, f"WHO_AM_I 0x{who:02x}{note}"))
    for address in INA_ADDRESSES:
        try:
            maker = swap16(bus.read_word_data(address, ina219.MANUFACTURER_ID))
            die = swap16(bus.read_word_data(address, ina219.DIE_ID))
        except OSError as exc:
            if not is_nack(exc):
                detail = f"answers, but reads fail: {describe(exc)}"
                found.append(Found(address, "unknown", "", detail))
            continue
        if ina219.is_ina260(maker, die):
            found.append(Found(address, "INA260", "", "power monitor (manufacturer and die ID)"))
        elif maker == ina219.TI_ID:  # an INA219 has no ID registers: another TI monitor
            detail = "power monitor, not supported (har-agent reads the INA219 and INA260)"
            found.append(Found(address, f"TI INA2xx (die 0x{die:04x})", "", detail))
        else:
            detail = "power monitor (assumed: the INA219 has no ID register)"
            found.append(Found(address, "INA219", "", detail))
    return found
