"""The I2C bus the drivers talk to: the :class:`I2CBus` protocol and :func:`open_smbus`.

:class:`I2CBus` lists the ``smbus2.SMBus`` methods the drivers use, with smbus2's signatures, so a
real ``SMBus`` and the register-level emulation in :mod:`agent.testing.i2c_emulation` plug in alike.
Transfers fail with :class:`OSError` as the kernel reports them: ``EIO`` (bus error), ``ETIMEDOUT``
(a stretched clock or lost arbitration), ``ENXIO`` or ``EREMOTEIO`` (the address was not
acknowledged: a NACK; the Raspberry Pi's i2c-bcm2835 adapter reports ``EREMOTEIO``). Drivers turn
them into :class:`~agent.errors.SensorReadError` with :func:`transfer_error`.

SMBus words are little-endian (first byte on the wire = low byte); chips with big-endian 16-bit
registers (the INA219) swap with :func:`swap16`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Protocol, cast

from agent.errors import SensorNotFoundError, SensorReadError, SourceError

BLOCK_MAX = 32
"""I2C_SMBUS_BLOCK_MAX: the most bytes one SMBus block transfer moves (smbus2 refuses more)."""

NACK_ERRNOS = frozenset({errno.ENXIO, errno.EREMOTEIO})
"""How Linux adapters report an address that nobody acknowledged."""


class I2CBus(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def close(self) -> None: ...


NO_BUS_HINT = (
    "on a Raspberry Pi: enable I2C with raspi-config (Interface Options -> I2C, or "
    "'sudo raspi-config nonint do_i2c 0') and reboot; elsewhere: load the i2c-dev module "
    "('sudo modprobe i2c-dev') and check the bus number ('ls /dev/i2c-*')"
)
"""What to do when ``/dev/i2c-N`` does not exist: raspi-config is on Raspberry Pi OS only."""

BusFactory = Callable[[int], I2CBus]
"""Opens I2C bus N (``/dev/i2c-N``); :func:`open_smbus` in production, an emulation in tests."""


def open_smbus(bus: int) -> I2CBus:
    """Open ``/dev/i2c-<bus>`` with smbus2; a missing or forbidden device is a one-line error."""
    path = f"/dev/i2c-{bus}"
    try:
        import smbus2
    except ImportError as exc:  # a runtime dependency, but say so plainly if it is missing
        raise SourceError("the smbus2 package is not installed (pip install smbus2)") from exc
    try:
        return cast(I2CBus, smbus2.SMBus(bus))
    except FileNotFoundError as exc:
        raise SourceError(
            f"I2C bus {bus} is not available ({path}: No such file or directory); {NO_BUS_HINT}"
        ) from exc
    except PermissionError as exc:
        raise SourceError(
            f"no permission to open {path}; add this user to the i2c group "
            "('sudo adduser $USER i2c') and log in again"
        ) from exc
    except OSError as exc:
        raise SourceError(f"cannot open I2C bus {bus} ({path}: {describe(exc)})") from exc


class ReopeningBus:
    """An :class:`I2CBus` whose ``/dev/i2c-N`` handle can be closed and opened again.

    A file descriptor of an I2C adapter that went away (a USB bridge unplugged, the driver
    reloaded) fails every transfer with ``ENODEV`` even after the adapter comes back; only a new
    handle reaches the chips again. The sensor source calls :meth:`reopen` before it
    re-initialises a chip that stopped answering.
    """

    def __init__(self, factory: BusFactory, number: int) -> None:
        self._factory = factory
        self.number = number
        self._bus: I2CBus | None = factory(number)
        self.reopens = 0

    def reopen(self) -> None:
        """Close the handle and open ``/dev/i2c-N`` again; SourceError if it cannot be opened
        (transfers then fail with ``ENODEV`` until a later :meth:`reopen` succeeds)."""
        self.close()
        try:
            self._bus = self._factory(self.number)
        except SourceError as exc:
            raise SourceError(f"cannot reopen I2C bus {self.number}: {exc}") from exc
        except OSError as exc:
            raise SourceError(
                f"cannot reopen I2C bus {self.number} (/dev/i2c-{self.number}: {describe(exc)})"
            ) from exc
        self.reopens += 1

    def _handle(self) -> I2CBus:
        if self._bus is None:
            raise OSError(errno.ENODEV, f"I2C bus {self.number} is not open")
        return self._bus

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._handle().read_byte_data(i2c_addr, register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._handle().write_byte_data(i2c_addr, register, value)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return self._handle().read_i2c_block_data(i2c_addr, register, length)

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return self._handle().read_word_data(i2c_addr, register)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._handle().write_word_data(i2c_addr, register, value)

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            try:
                bus.close()
            except OSError:  # closing the handle of a vanished adapter: nothing left to release
                pass


def describe(exc: OSError) -> str:
    """``EIO (Input/output error)`` for an OSError from a transfer."""
    if exc.errno is None:
        return str(exc)
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{name} ({os.strerror(exc.errno)})"


def is_nack(exc: OSError) -> bool:
    return exc.errno in NACK_ERRNOS


def transfer_error(exc: OSError, where: str, what: str) -> SensorReadError:
    """The :class:`SensorReadError` for a failed transfer (raise it ``from exc``)."""
    return SensorReadError(f"{where}: {what} failed: {describe(exc)}")


def swap16(word: int) -> int:
    """Swap the two bytes of a 16-bit SMBus word (big-endian registers over little-endian SMBus)."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def read_stream(bus: I2CBus, addr: int, register: int, n: int, chunk: int = BLOCK_MAX) -> bytes:
    """``n`` bytes from a register that streams (a FIFO port), in block reads of ``chunk`` bytes.

    Every block read starts at ``register``: the chip either does not advance its register pointer
    on its FIFO port (InvenSense FIFO_R_W) or wraps it back to the port (ST FIFO_DATA_OUT_TAG).
    """
    if not 1 <= chunk <= BLOCK_MAX:
        raise ValueError(f"block reads move 1..{BLOCK_MAX} bytes, not {chunk}")
    out = bytearray()
    while len(out) < n:
        k = min(chunk, n - len(out))
        out += bytes(bus.read_i2c_block_data(addr, register, k))
    return bytes(out)


def read_id(
    bus: I2CBus, address: int, register: int, bus_no: int, where: str, address_hint: str
) -> int:
    """Read an identification register. A NACK means no chip at the address (a clear
    SensorNotFoundError naming ``address_hint``); any other failure is a SensorReadError."""
    try:
        return bus.read_byte_data(address, register)
    except OSError as exc:
        if is_nack(exc):
            raise SensorNotFoundError(
                f"no chip answers at address 0x{address:02x} on I2C bus {bus_no}; check the "
                f"wiring and the address ({address_hint}), and run 'har-agent sensors probe'"
            ) from exc
        raise transfer_error(exc, where, "reading WHO_AM_I") from exc
