"""Register-level models of the TI INA219 and INA260 (register facts as in
:mod:`agent.sensors.ina219`): 16-bit registers sent most significant byte first, the INA219's
calibration arithmetic (current = shunt x Cal / 4096, power = current x bus / 5000, both 0 until Cal
is written), its reset bit, the OVF flag, and the INA260's fixed LSBs and ID registers."""

from __future__ import annotations

from collections.abc import Callable

from agent.sensors import ina219 as r

PowerWorld = Callable[[float], tuple[float, float]]
"""Host time (s) -> (bus voltage in V, current in A) that the chip measures."""


def constant(volts: float, amps: float) -> PowerWorld:
    return lambda _t: (volts, amps)


def _clamp16(value: int, signed: bool) -> tuple[int, bool]:
    lo, hi = (-32768, 32767) if signed else (0, 65535)
    clipped = min(hi, max(lo, value))
    return clipped & 0xFFFF, clipped != value


class _WordDevice:
    def __init__(self, world: PowerWorld) -> None:
        self.world = world
        self.regs: dict[int, int] = {}
        self.writes: list[tuple[int, int]] = []
        self._now = 0.0

    def sync(self, now: float) -> None:
        self._now = now

    def value(self, reg: int) -> int:
        return self.regs.get(reg, 0)

    def read_bytes(self, register: int, n: int) -> bytes:
        return self.value(register).to_bytes(2, "big")[:n]  # most significant byte first

    def write_bytes(self, register: int, data: bytes) -> None:
        if len(data) != 2:
            raise ValueError(f"16-bit register 0x{register:02x} written with {len(data)} bytes")
        value = int.from_bytes(data, "big")
        self.writes.append((register, value))
        self.store(register, value)

    def store(self, register: int, value: int) -> None:
        self.regs[register] = value


class Ina219Model(_WordDevice):
    def __init__(self, world: PowerWorld, *, shunt_ohms: float = 0.1) -> None:
        super().__init__(world)
        self.shunt_ohms = shunt_ohms
        self.power_on_reset()

    def power_on_reset(self) -> None:
        """What a brown-out does: configuration back to 0x399F, calibration lost."""
        self.regs = {r.CONFIG: r.INA219_CONFIG_DEFAULT, r.CALIBRATION: 0}

    def store(self, register: int, value: int) -> None:
        if register == r.CONFIG and value & r.RESET:
            self.power_on_reset()
        elif register == r.CALIBRATION:
            self.regs[register] = value & 0xFFFE  # bit 0 is not stored
        elif register == r.CONFIG:
            self.regs[register] = value

    def _measure(self) -> tuple[int, int, int, int, bool]:
        volts, amps = self.world(self._now)
        pg = (self.regs[r.CONFIG] >> 11) & 0b11
        limit = 4000 << pg  # +-40 mV at /1 ... +-320 mV at /8, 10 uV per LSB
        shunt = max(-limit, min(limit, round(amps * self.shunt_ohms / r.SHUNT_LSB_V)))
        bus = round(volts / r.BUS_LSB_V)
        cal = self.regs[r.CALIBRATION]
        current, ovf_i = _clamp16(int(shunt * cal / 4096), signed=True)
        signed_current = current - 0x10000 if current & 0x8000 else current
        power, ovf_p = _clamp16(int(abs(signed_current) * bus / 5000), signed=False)
        return shunt, bus, current, power, ovf_i or ovf_p

    def value(self, reg: int) -> int:
        if reg not in (r.SHUNT_VOLTAGE, r.BUS_VOLTAGE, r.POWER, r.CURRENT):
            return self.regs.get(reg, 0)
        shunt, bus, current, power, ovf = self._measure()
        if reg == r.SHUNT_VOLTAGE:
            return shunt & 0xFFFF
        if reg == r.BUS_VOLTAGE:
            return (bus << 3) | 0b10 | int(ovf)  # CNVR set: a conversion is ready
        return current if reg == r.CURRENT else power


class Ina260Model(_WordDevice):
    def __init__(self, world: PowerWorld, *, die_id: int = r.INA260_DIE_ID) -> None:
        """``die_id``: what register 0xFF answers, e.g. 0x2271 (an INA260, die revision 1) or
        0x2260 (the die ID INA226 drivers expect: another TI monitor, not an INA260)."""
        super().__init__(world)
        self.regs = {r.CONFIG: 0x6127, r.MANUFACTURER_ID: r.TI_ID, r.DIE_ID: die_id}

    def store(self, register: int, value: int) -> None:
        if register == r.CONFIG:
            self.regs[register] = 0x6127 if value & r.RESET else value

    def value(self, reg: int) -> int:
        volts, amps = self.world(self._now)
        if reg == r.INA260_CURRENT:
            return _clamp16(round(amps / r.INA260_CURRENT_LSB_A), signed=True)[0]
        if reg == r.INA260_BUS_VOLTAGE:
            return _clamp16(round(volts / r.INA260_BUS_LSB_V), signed=False)[0]
        if reg == r.INA260_POWER:
            return _clamp16(round(abs(volts * amps) / r.INA260_POWER_LSB_W), signed=False)[0]
        return self.regs.get(reg, 0)
