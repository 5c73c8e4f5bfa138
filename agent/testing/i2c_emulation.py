"""An emulated I2C bus that stands where ``smbus2.SMBus`` would: drivers cannot tell the difference.

:class:`EmulatedBus` implements the :class:`~agent.sensors.bus.I2CBus` methods with smbus2's
signatures and limits (a block transfer moves at most 32 bytes, values are bytes) and fails the way
the kernel does: ``OSError`` with ``errno.ENXIO`` for an address nobody acknowledges (pass
``nack_errno=errno.EREMOTEIO`` to mimic the Raspberry Pi's i2c-bcm2835 adapter), and whatever errno
a fault injection names (``EIO``, ``ETIMEDOUT``, ...). Before every transfer the addressed device
catches up with the injected clock, so FIFOs fill at the emulated output data rate.

Transfers take no time unless ``bit_rate_hz`` is given: then every transfer moves the (fake)
clock on by its time on the wire, 9 bits a byte (address, register and data bytes), so samples
arrive between the transfers of a FIFO drain as they do on a real bus (100 kHz: ~0.3 ms for a
32-byte block).

Fault injection: :meth:`EmulatedBus.fail` (the next transfers, or the Nth transfer on), a burst of
any length, limited to one address or not; :meth:`EmulatedBus.detach` (chip absent). Stuck values
are a property of the chip models (``stick()``).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from agent.clock import Clock

BLOCK_MAX = 32


class EmulatedDevice(Protocol):
    def sync(self, now: float) -> None:
        """Catch up with time ``now`` (monotonic seconds): produce the samples that are due."""

    def read_bytes(self, register: int, n: int) -> bytes:
        """One read transfer of ``n`` bytes starting at ``register``."""

    def write_bytes(self, register: int, data: bytes) -> None:
        """One write transfer starting at ``register``."""


@dataclass
class Fault:
    first: int
    """Number of the first failing transfer on the bus (1 = the first transfer ever)."""
    count: int
    errno: int
    address: int | None = None
    """Only transfers to this address fail (and count); None = any address."""
    seen: int = 0


class EmulatedBus:
    def __init__(
        self,
        clock: Clock,
        devices: dict[int, EmulatedDevice] | None = None,
        *,
        nack_errno: int = errno.ENXIO,
        bus_number: int = 1,
        bit_rate_hz: float | None = None,
    ) -> None:
        if bit_rate_hz is not None and not callable(getattr(clock, "advance", None)):
            raise TypeError("a timed bus (bit_rate_hz) needs a clock it can advance (FakeClock)")
        self.clock = clock
        self.bit_rate_hz = bit_rate_hz
        self.devices: dict[int, EmulatedDevice] = dict(devices or {})
        self.nack_errno = nack_errno
        self.bus_number = bus_number
        self.transfers = 0
        self.failures = 0
        self.ops: Counter[str] = Counter()
        self.closed = False
        self.opens = 0
        self.adapter_present = True
        self._stale = False  # the adapter went away under the open handle: it stays dead
        self._faults: list[Fault] = []

    # -- what the tests do -------------------------------------------------------------------

    def attach(self, address: int, device: EmulatedDevice) -> None:
        self.devices[address] = device

    def detach(self, address: int) -> EmulatedDevice:
        """Unplug the chip: transfers to it are no longer acknowledged."""
        return self.devices.pop(address)

    def fail(
        self, count: int = 1, err: int = errno.EIO, *, after: int = 0, address: int | None = None
    ) -> Fault:
        """Make ``count`` transfers fail with ``err``, starting ``after`` transfers from now (to
        ``address`` only, when given: then ``after`` counts transfers to that address)."""
        fault = Fault(first=after + 1, count=count, errno=err, address=address)
        self._faults.append(fault)
        return fault

    def remove_adapter(self) -> None:
        """The I2C adapter disappears (a USB bridge unplugged, the driver unloaded): the open
        handle fails every transfer with ENODEV, and ``/dev/i2c-N`` cannot be opened."""
        self.adapter_present = False
        self._stale = True

    def restore_adapter(self) -> None:
        """The adapter is back. As with a real file descriptor, the old handle stays dead: only
        a handle opened again (:meth:`factory`) reaches the chips."""
        self.adapter_present = True

    def factory(self, bus: int) -> EmulatedBus:
        """A :data:`~agent.sensors.bus.BusFactory` that hands out this bus."""
        if bus != self.bus_number or not self.adapter_present:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), f"/dev/i2c-{bus}")
        self.closed = False
        self._stale = False
        self.opens += 1
        return self

    # -- smbus2.SMBus --------------------------------------------------------------------------

    def _begin(self, op: str, addr: int, register: int) -> EmulatedDevice:
        if self.closed:
            raise ValueError("I/O on a closed bus")
        if self._stale:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        if not 0 <= addr <= 0x7F or not 0 <= register <= 0xFF:
            raise ValueError(f"bad address 0x{addr:x} or register 0x{register:x}")
        self.transfers += 1
        self.ops[op] += 1
        for fault in self._faults:
            if fault.address is not None and fault.address != addr:
                continue
            fault.seen += 1
            if fault.first <= fault.seen < fault.first + fault.count:
                self.failures += 1
                raise OSError(fault.errno, os.strerror(fault.errno))
        device = self.devices.get(addr)
        if device is None:
            raise OSError(self.nack_errno, os.strerror(self.nack_errno))
        device.sync(self.clock.monotonic())
        return device

    def _wire(self, n_bytes: int) -> None:
        """A transfer of ``n_bytes`` on the wire (address and register bytes included) done."""
        if self.bit_rate_hz is not None:
            self.clock.advance(9 * n_bytes / self.bit_rate_hz)  # type: ignore[attr-defined]

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        value = self._begin("read_byte_data", i2c_addr, register).read_bytes(register, 1)[0]
        self._wire(4)  # address + register, repeated start address + data
        return value

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"byte value out of range: {value}")
        self._begin("write_byte_data", i2c_addr, register).write_bytes(register, bytes([value]))
        self._wire(3)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if length > BLOCK_MAX:  # smbus2's own check, word for word
            raise ValueError(f"Desired block length over {BLOCK_MAX} bytes")
        device = self._begin("read_i2c_block_data", i2c_addr, register)
        out = list(device.read_bytes(register, length))
        self._wire(3 + length)
        return out

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        if len(data) > BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {BLOCK_MAX} bytes")
        self._begin("write_i2c_block_data", i2c_addr, register).write_bytes(register, bytes(data))
        self._wire(2 + len(data))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        lo, hi = self._begin("read_word_data", i2c_addr, register).read_bytes(register, 2)
        self._wire(5)
        return lo | (hi << 8)  # SMBus words: the first byte on the wire is the low byte

    def write_word_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"word value out of range: {value}")
        device = self._begin("write_word_data", i2c_addr, register)
        device.write_bytes(register, bytes([value & 0xFF, value >> 8]))
        self._wire(4)

    def close(self) -> None:
        self.closed = True


class RegisterDevice:
    """Base of the 8-bit-register chip models: a register file with auto-increment.

    Subclasses override :meth:`read_register` / :meth:`write_register` for registers with side
    effects (FIFO ports, clear-on-read flags, reset bits) and :meth:`next_register` where the
    register pointer does not simply advance. Every byte written is logged in :attr:`writes`.
    """

    def __init__(self, reset_values: dict[int, int], size: int = 128) -> None:
        self._reset_values = dict(reset_values)
        self.regs = bytearray(size)
        self.writes: list[tuple[int, int]] = []
        self.reset_registers()

    def reset_registers(self) -> None:
        self.regs[:] = bytes(len(self.regs))
        for reg, value in self._reset_values.items():
            self.regs[reg] = value

    def sync(self, now: float) -> None:
        pass

    def read_register(self, reg: int) -> int:
        return self.regs[reg] if reg < len(self.regs) else 0

    def write_register(self, reg: int, value: int) -> None:
        if reg < len(self.regs):
            self.regs[reg] = value

    def next_register(self, reg: int) -> int:
        return (reg + 1) & 0xFF

    def read_bytes(self, register: int, n: int) -> bytes:
        out = bytearray()
        reg = register
        for _ in range(n):
            out.append(self.read_register(reg))
            reg = self.next_register(reg)
        return bytes(out)

    def write_bytes(self, register: int, data: bytes) -> None:
        reg = register
        for value in data:
            self.writes.append((reg, value))
            self.write_register(reg, value)
            reg = self.next_register(reg)
