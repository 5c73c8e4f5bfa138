"""Front ends: a source's samples turned into one input spec's windows.

A front selects the model's channels, resamples to the model's rate when the source runs at
another, and cuts sliding windows. Bank members that share a window spec share a front. When
the agent may switch between members of different resolutions, one front per resolution keeps
running, so the member switched to has its windows ready (no gap in the predictions) and every
window was resampled as a stream, as in training.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.errors import DataError
from agent.manifest import InputSpec
from agent.recording import Chunk, RecordingHeader
from agent.windowing import Resampler, Window, Windower

log = logging.getLogger(__name__)

SATURATION = 0.999
"""A sample at or beyond this fraction of its channel's full scale is saturated (clipped)."""
KEEP_SATURATED = 4096
KEEP_IDLE = 2
"""Windows a front that no running member reads keeps (what a switch to it may still need)."""


@dataclass(frozen=True)
class FrontKey:
    rate_hz: float
    length: int
    hop: int
    channels: tuple[str, ...]
    units: tuple[str, ...]

    @classmethod
    def of(cls, spec: InputSpec) -> FrontKey:
        return cls(spec.rate_hz, spec.length, spec.hop, spec.channels, spec.units)


def channel_indices(
    header: RecordingHeader, channels: tuple[str, ...], units: tuple[str, ...], where: str
) -> list[int]:
    """Columns of the source that feed the model's channels, in the model's order."""
    names = header.channel_names
    out: list[int] = []
    for name, unit in zip(channels, units, strict=True):
        if name not in names:
            raise DataError(
                f"{where} has no channel {name!r} needed by the model (has {list(names)})"
            )
        i = names.index(name)
        if header.channels[i].unit != unit:
            raise DataError(
                f"{where}: channel {name!r} is in {header.channels[i].unit!r}, "
                f"the model needs {unit!r}"
            )
        out.append(i)
    return out


class Front:
    """Channel selection, resampling and windowing for one :class:`FrontKey`."""

    def __init__(self, header: RecordingHeader, spec: InputSpec, source_name: str) -> None:
        self.key = FrontKey.of(spec)
        self._cols = channel_indices(header, spec.channels, spec.units, source_name)
        self._identity = self._cols == list(range(len(header.channels)))
        rate = header.sample_rate_hz
        self.resampler = Resampler(rate, spec.rate_hz) if abs(rate - spec.rate_hz) > 1e-9 else None
        if self.resampler:
            log.info("resampling %s from %g Hz to %g Hz", source_name, rate, spec.rate_hz)
        self.windower = Windower(spec.window, len(spec.channels))
        scales = [header.channels[i].full_scale for i in self._cols]
        self._limits = (
            np.array([SATURATION * f if f else np.inf for f in scales], dtype=np.float32)
            if any(scales)
            else None
        )
        self._saturated: deque[float] = deque(maxlen=KEEP_SATURATED)
        """Times of recent saturated samples (only sources that declare a full scale)."""
        self.hop_s = spec.window.hop_s
        self.ready: deque[Window] = deque()
        """Windows cut and not yet taken, oldest first."""

    def push(self, chunk: Chunk) -> None:
        if not self._identity:
            chunk = Chunk(chunk.t, chunk.values[:, self._cols], chunk.labels)
        if self._limits is not None and len(chunk):
            hit = (np.abs(chunk.values) >= self._limits).any(axis=1)
            if hit.any():
                self._saturated.extend(chunk.t[hit].tolist())
        if self.resampler is not None:
            chunk = self.resampler.push(chunk)
        self.ready.extend(self.windower.push(chunk))

    def saturated(self, w: Window) -> bool:
        """Whether any source sample within the window's span was saturated."""
        sat = self._saturated
        if not sat:
            return False
        while sat and sat[0] < w.start_t - 1.0:  # older than any window still to come
            sat.popleft()
        return any(w.start_t <= t <= w.end_t for t in sat)

    def trim(self) -> None:
        """Forget all but the newest :data:`KEEP_IDLE` windows (a front nobody reads now)."""
        while len(self.ready) > KEEP_IDLE:
            self.ready.popleft()
