"""sensors probe: which supported chips answer, and where."""

import errno

from agent.clock import FakeClock
from agent.sensors.probe import scan
from agent.testing.feeds import ConstantFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.ina219_model import Ina219Model, Ina260Model, constant
from agent.testing.lsm6dsox_model import Lsm6dsoxModel
from agent.testing.mpu6050_model import Mpu6050Model

FEED = ConstantFeed((0, 0, 1, 0, 0, 0))


def test_names_every_supported_chip() -> None:
    bus = EmulatedBus(
        FakeClock(),
        {
            0x68: Mpu6050Model(FEED),
            0x69: Mpu6050Model(FEED, variant="mpu9250"),
            0x6A: Lsm6dsoxModel(FEED),
            0x40: Ina219Model(constant(5.0, 0.1)),
            0x45: Ina260Model(constant(5.0, 0.1)),
        },
    )
    found = {f.address: f for f in scan(bus)}
    assert sorted(found) == [0x40, 0x45, 0x68, 0x69, 0x6A]
    assert (found[0x68].chip, found[0x68].chip_key) == ("MPU-6050", "mpu6050")
    assert (found[0x69].chip, found[0x69].chip_key) == ("MPU-9250", "mpu9250")
    assert (found[0x6A].chip, found[0x6A].chip_key) == ("LSM6DSOX/LSM6DSO/LSM6DSO32", "lsm6dsox")
    assert "check the part marking" in found[0x6A].detail  # WHO_AM_I 0x6C is shared
    assert found[0x40].chip == "INA219" and found[0x45].chip == "INA260"
    assert found[0x68].line() == '0x68  MPU-6050           WHO_AM_I 0x68  (sensor.chip = "mpu6050")'
    assert all(op.startswith("read") for op in bus.ops)  # probing never writes


def test_unknown_and_unsupported_chips() -> None:
    bus = EmulatedBus(
        FakeClock(),
        {0x68: Mpu6050Model(FEED, who_am_i=0x98), 0x6B: Lsm6dsoxModel(FEED, who_am_i=0x69)},
    )
    found = {f.address: f for f in scan(bus)}
    assert (found[0x68].chip, found[0x68].chip_key) == ("unknown", "")
    assert found[0x6B].chip == "LSM6DS3" and "not supported" in found[0x6B].detail


def test_empty_bus_and_the_pi_nack_errno() -> None:
    assert scan(EmulatedBus(FakeClock())) == []
    assert scan(EmulatedBus(FakeClock(), nack_errno=errno.EREMOTEIO)) == []


def test_a_failing_transfer_is_reported_not_hidden() -> None:
    bus = EmulatedBus(FakeClock(), {0x68: Mpu6050Model(FEED)})
    bus.fail(1, errno.EIO, address=0x68)
    (found,) = scan(bus)
    assert found.chip == "unknown" and "EIO" in found.detail


def test_ti_monitors_by_their_ids() -> None:
    bus = EmulatedBus(
        FakeClock(),
        {
            0x40: Ina260Model(constant(5.0, 0.1), die_id=0x2271),  # an INA260, die revision 1
            0x41: Ina260Model(constant(5.0, 0.1), die_id=0x2260),  # TI's ID, another device ID
            0x44: Ina219Model(constant(5.0, 0.1)),  # no ID registers: assumed an INA219
        },
    )
    found = {f.address: f for f in scan(bus)}
    assert found[0x40].chip == "INA260"
    assert found[0x41].chip == "TI INA2xx (die 0x2260)" and "not supported" in found[0x41].detail
    assert found[0x44].chip == "INA219" and "assumed" in found[0x44].detail
