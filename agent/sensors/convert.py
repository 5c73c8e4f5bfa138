"""Raw sensor words to the model's channels and units (pure, numpy).

Every IMU driver hands over samples as ``[n, 6]`` float64: acceleration x, y, z in g, then angular
rate x, y, z in rad/s, in the chip's own frame. :func:`remap` turns them into the model's frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agent.recording_header import Channel
from agent.sensors.axes import parse_axes

IMU_CHANNELS = (
    Channel("acc_x", "g"),
    Channel("acc_y", "g"),
    Channel("acc_z", "g"),
    Channel("gyro_x", "rad/s"),
    Channel("gyro_y", "rad/s"),
    Channel("gyro_z", "rad/s"),
)
"""What a live IMU source yields: the channel names and units of the bundled recordings."""

DEG_TO_RAD = math.pi / 180.0


def with_full_scale(accel_range_g: float, gyro_range_dps: float) -> tuple[Channel, ...]:
    """:data:`IMU_CHANNELS` with the chip's limits as full scale (saturation detection): pass
    the largest readings it can give, which can differ from the nominal range."""
    gyro = gyro_range_dps * DEG_TO_RAD
    return tuple(
        Channel(c.name, c.unit, float(accel_range_g) if c.unit == "g" else gyro)
        for c in IMU_CHANNELS
    )


def words(data: bytes, per_row: int, big_endian: bool) -> np.ndarray:
    """Two's-complement 16-bit words, ``per_row`` to a row (``[n, per_row]`` int32)."""
    if len(data) % (2 * per_row):
        raise ValueError(f"{len(data)} bytes are not whole rows of {per_row} 16-bit words")
    dtype = ">i2" if big_endian else "<i2"
    return np.frombuffer(data, dtype=dtype).reshape(-1, per_row).astype(np.int32)


def to_units(raw: np.ndarray, g_per_lsb: float, dps_per_lsb: float) -> np.ndarray:
    """``[n, 6]`` raw words (accel x y z, gyro x y z) to g and rad/s."""
    out = np.empty(raw.shape, dtype=np.float64)
    out[:, :3] = raw[:, :3] * g_per_lsb
    out[:, 3:] = raw[:, 3:] * (dps_per_lsb * DEG_TO_RAD)
    return out


def remap(values: np.ndarray, axes: Sequence[str]) -> np.ndarray:
    """Samples ``[n, 6]`` from the chip's frame into the model's (see :mod:`agent.sensors.axes`)."""
    order = parse_axes(axes)
    if [i for i, _ in order] == [0, 1, 2] and all(s == 1 for _, s in order):
        return values
    out = np.empty_like(values)
    for block in (0, 3):
        for k, (i, sign) in enumerate(order):
            out[:, block + k] = sign * values[:, block + i]
    return out
