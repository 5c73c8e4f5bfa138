"""INA219 / INA260 power monitor drivers against their register models."""

import pytest

from agent.clock import FakeClock
from agent.errors import ConfigError, SensorNotFoundError
from agent.sensors import ina219 as r
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.ina219_model import Ina219Model, Ina260Model, constant


@pytest.mark.parametrize(
    ("shunt", "amps", "cal", "pg"),
    [
        (0.1, 3.2, 4194, 3),  # the common breakout: 0.1 ohm, 3.2 A, 320 mV range
        (0.1, 1.0, 13420, 2),  # trunc(13421.77) = 13421, bit 0 not stored -> 13420
        (0.1, 0.4, 33554, 0),
        (0.01, 10.0, 13420, 2),
        # I_max x R below ~20.5 mV: the formula's Cal does not fit 16 bits, so the largest one is
        # used (the finest LSB the chip has, 6.25 uA at 0.1 ohm), not the value modulo 65536
        (0.1, 0.2, 65534, 0),  # raw 67108 (wrapped to 1572 before)
        (0.1, 0.1, 65534, 0),  # raw 134217 (wrapped to 3144)
        (0.1, 0.2048, 65534, 0),  # raw exactly 65536 (wrapped to 0: refused before)
    ],
)
def test_calibration(shunt: float, amps: float, cal: int, pg: int) -> None:
    c = r.ina219_calibration(shunt, amps)
    assert c.cal == cal
    assert (c.config >> 11) & 0b11 == pg
    assert c.config & 0x7 == 0b111 and (c.config >> 13) & 1 == 1
    assert c.current_lsb_a == pytest.approx(0.04096 / (cal * shunt))
    assert c.power_lsb_w == pytest.approx(20 * c.current_lsb_a)


def test_calibration_beyond_the_shunt_range() -> None:
    with pytest.raises(ConfigError, match="beyond the chip's 320 mV shunt range"):
        r.ina219_calibration(0.1, 5.0)


def rig(world: r.PowerReading | None = None) -> tuple[EmulatedBus, Ina219Model]:
    model = Ina219Model(constant(5.1, 0.62))
    return EmulatedBus(FakeClock(), {0x40: model}), model


def test_ina219_reads_voltage_current_power() -> None:
    bus, model = rig()
    chip = r.Ina219(bus, 0x40)
    chip.open()
    c = chip.calibration
    # big-endian registers over little-endian SMBus words: the chip holds the intended values
    assert model.regs[r.CALIBRATION] == c.cal and model.regs[r.CONFIG] == c.config
    assert model.writes[0] == (r.CONFIG, r.RESET)
    got = chip.read()
    assert got.bus_v == pytest.approx(5.1, abs=0.004)
    assert got.shunt_v == pytest.approx(0.062, abs=10e-6)
    assert got.current_a == pytest.approx(0.62, abs=2 * c.current_lsb_a)
    assert got.power_w == pytest.approx(5.1 * 0.62, abs=0.01)
    assert not got.overflow


def test_ina219_restores_a_lost_calibration() -> None:
    bus, model = rig()
    chip = r.Ina219(bus, 0x40)
    chip.open()
    model.power_on_reset()  # a brown-out: current and power would read 0
    assert chip.read().current_a == pytest.approx(0.62, abs=0.001)
    assert model.regs[r.CALIBRATION] == chip.calibration.cal


def test_ina219_overflow_flag() -> None:
    model = Ina219Model(constant(12.0, 3.0))
    bus = EmulatedBus(FakeClock(), {0x40: model})
    chip = r.Ina219(bus, 0x40, max_current_a=1.0)  # calibrated for 1 A, 3 A flows
    chip.open()
    assert chip.read().overflow


def test_ina219_absent() -> None:
    bus = EmulatedBus(FakeClock())
    with pytest.raises(SensorNotFoundError, match="no INA219 answers at I2C bus 1, address 0x40"):
        r.Ina219(bus, 0x40).open()


def test_ina260() -> None:
    model = Ina260Model(constant(4.98, 1.234))
    bus = EmulatedBus(FakeClock(), {0x41: model})
    chip = r.Ina260(bus, 0x41)
    chip.open()
    got = chip.read()
    assert got.bus_v == pytest.approx(4.98, abs=1.25e-3)
    assert got.current_a == pytest.approx(1.234, abs=1.25e-3)
    assert got.power_w == pytest.approx(4.98 * 1.234, abs=0.01)
    # an INA219 at the address is not an INA260
    bus.attach(0x41, Ina219Model(constant(5.0, 0.1)))
    with pytest.raises(SensorNotFoundError, match="not an INA260"):
        chip.open()


def test_ina260_of_another_die_revision() -> None:
    # register 0xFF: device ID 0x227 in bits 15:4, die revision in bits 3:0 (Adafruit INA260)
    model = Ina260Model(constant(5.0, 0.5), die_id=0x2271)
    bus = EmulatedBus(FakeClock(), {0x40: model})
    chip = r.Ina260(bus, 0x40)
    chip.open()
    assert chip.read().current_a == pytest.approx(0.5, abs=1.25e-3)
    assert r.is_ina260(0x5449, 0x227F) and not r.is_ina260(0x5449, 0x2260)
    assert not r.is_ina260(0x0000, 0x2270)


def test_another_ti_monitor_is_not_an_ina260() -> None:
    bus = EmulatedBus(FakeClock(), {0x40: Ina260Model(constant(5.0, 0.5), die_id=0x2260)})
    with pytest.raises(SensorNotFoundError, match=r"not an INA260 \(IDs 0x5449/0x2260, expected "):
        r.Ina260(bus, 0x40).open()
