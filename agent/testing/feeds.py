"""The physical world an emulated IMU measures: acceleration (g) and angular rate (rad/s) over time.

A feed is sampled at world positions (seconds since the emulated chip put its first sample in its
FIFO). :class:`RecordingFeed` replays a real recording: at the recording's own rate every sample is
exactly one row; at another rate the rows are interpolated linearly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.recording import read_recording

IMU_COLUMNS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


class ImuFeed(Protocol):
    def sample(self, pos_s: np.ndarray) -> np.ndarray:
        """Values ``[len(pos_s), 6]`` (g, rad/s) at world positions ``pos_s`` (seconds)."""


class ConstantFeed:
    def __init__(self, values: tuple[float, ...] | np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64).reshape(6)

    def sample(self, pos_s: np.ndarray) -> np.ndarray:
        return np.tile(self.values, (len(pos_s), 1))


class RecordingFeed:
    def __init__(
        self,
        values: np.ndarray,
        rate_hz: float,
        *,
        loop: bool = True,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.rate_hz = rate_hz
        self.loop = loop
        self.on_end = on_end
        self.ended = False

    @classmethod
    def from_file(
        cls, path: str | Path, *, loop: bool = True, on_end: Callable[[], None] | None = None
    ) -> RecordingFeed:
        header, chunk = read_recording(path)
        cols = [header.channel_names.index(c) for c in IMU_COLUMNS]
        return cls(chunk.values[:, cols], header.sample_rate_hz, loop=loop, on_end=on_end)

    @property
    def duration_s(self) -> float:
        return len(self.values) / self.rate_hz

    def sample(self, pos_s: np.ndarray) -> np.ndarray:
        n = len(self.values)
        p = np.asarray(pos_s, dtype=np.float64) * self.rate_hz
        near = np.rint(p)
        p = np.where(np.abs(p - near) < 1e-6, near, p)  # on the recording's grid: exact rows
        if self.loop:
            p = np.mod(p, n)
        elif len(p) and p[-1] > n - 1:
            if not self.ended and self.on_end is not None:
                self.on_end()
            self.ended = True
        p = np.clip(p, 0, n - 1)
        lo = np.floor(p).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        hi = np.where(hi == lo, lo, hi)
        frac = (p - lo)[:, None]
        out: np.ndarray = self.values[lo] * (1 - frac) + self.values[hi] * frac
        return out
