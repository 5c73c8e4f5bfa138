"""What every IMU driver offers: the settings it is given, what it reports, the :class:`ImuDriver`
protocol, and small pure helpers the drivers share."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.errors import ConfigError

Sleep = Callable[[float], None]
"""Wait this many seconds (drivers wait after a reset); the source passes its injected clock's."""


@dataclass(frozen=True)
class ImuSettings:
    """What the profile asks of the chip (``[sensor]``)."""

    chip: str
    bus: int
    address: int
    rate_hz: float
    accel_range_g: int
    gyro_range_dps: int
    dlpf_hz: float

    @property
    def where(self) -> str:
        return f"I2C bus {self.bus}, address 0x{self.address:02x}"


@dataclass(frozen=True)
class ImuInfo:
    """What the driver found and set: the chip, and the rate and filter it really runs at."""

    chip: str
    who_am_i: int
    rate_hz: float
    accel_range_g: int
    gyro_range_dps: int
    bandwidth_hz: float
    """Low-pass bandwidth of the configured digital filter: both sensors' on the MPU family, the
    accelerometer's only on the LSM6DSOX/DSO32 (its gyroscope's follows the output data rate;
    the driver says so when it opens the chip)."""
    fifo_samples: int
    """How many samples the FIFO holds before it overflows."""
    accel_limit_g: float | None = None
    gyro_limit_dps: float | None = None
    """The largest readings the chip can give (32767 LSB times its sensitivity), which differ
    from the nominal ranges (e.g. 998.99 deg/s at an MPU's +-1000, 286.7 at an LSM6DSOX's
    +-250): the full scale that saturation is detected against. ``None``: the nominal range."""


@dataclass(frozen=True)
class FifoBatch:
    """Samples drained from the FIFO, oldest first: ``[n, 6]`` g and rad/s in the chip's frame.

    ``overflow`` means the FIFO overflowed since the last read: samples were lost and the driver has
    already reset the FIFO (``values`` is then empty: what was left could be misaligned).
    """

    values: np.ndarray
    overflow: bool = False
    resync: bool = False
    """A read failed part-way through the FIFO, so its frames may be out of step: the driver
    reset the FIFO before this batch (``values`` empty; samples were lost, as with overflow)."""

    def __len__(self) -> int:
        return int(self.values.shape[0])


class ImuDriver(Protocol):
    def open(self) -> ImuInfo:
        """Identify the chip, reset and configure it, start its FIFO.

        Raises :class:`~agent.errors.SensorNotFoundError` when nothing (or another chip) answers,
        :class:`~agent.errors.SensorReadError` when a transfer fails.
        """

    def reset_fifo(self) -> None:
        """Empty the FIFO; sampling into it continues."""

    def read(self) -> FifoBatch:
        """Drain whole samples from the FIFO with block reads."""


def empty_batch(overflow: bool = False, resync: bool = False) -> FifoBatch:
    return FifoBatch(np.zeros((0, 6), dtype=np.float64), overflow, resync)


def nearest(value: float, options: Iterable[float]) -> float:
    """The option nearest to ``value`` by ratio (filter bandwidths are spaced geometrically)."""
    return min(options, key=lambda o: abs(math.log(o / value)))


def pick(table: dict[int, int], value: int, key: str, what: str) -> int:
    """``table[value]`` or a ConfigError naming the profile key and the allowed values."""
    if value not in table:
        allowed = ", ".join(str(v) for v in sorted(table))
        raise ConfigError(f"{key} = {value} is not a {what} (allowed: {allowed})")
    return table[value]
