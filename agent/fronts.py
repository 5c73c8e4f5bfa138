"""Front ends: a source's samples turned into one input spec's windows.

A front selects the model's channels, resamples to the model's rate when the source runs at
another, and cuts sliding windows. Bank members that share a window spec share a front. When
the agent may switch between members of different resolutions there is one front per
resolution, but only the running member's front does the work: an idle front keeps the last
few seconds of raw samples (a deque of chunk references, no arithmetic). When the agent switches
to it, it resamples that history as a stream, as in training, starting so that its first window
begins one hop after the last window classified: no gap in the predictions, no repeat.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.errors import DataError
from agent.manifest import InputSpec
from agent.recording import Chunk
from agent.recording_header import RecordingHeader
from agent.resampling import Resampler
from agent.windowing import Window, Windower

log = logging.getLogger(__name__)

SATURATION = 0.999
"""A sample at or beyond this fraction of its channel's full scale is saturated (clipped)."""
KEEP_SATURATED = 4096
HISTORY_MARGIN_S = 1.0
"""Raw history a front keeps beyond one window and two hops (the filter's warm-up)."""


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
        # windows are views of its buffer: the pipeline classifies each before the next push
        self.windower = Windower(spec.window, len(spec.channels), copy=False)
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
        self._spec = spec
        self._in_rate = rate
        self.active = True
        self._keep_history = False
        """Set once the pipeline may switch between fronts (see :meth:`idle`)."""
        self._history: deque[Chunk] = deque()
        self._keep_s = spec.window.duration_s + 2 * spec.window.hop_s + HISTORY_MARGIN_S

    def push(self, chunk: Chunk) -> None:
        if not self._identity:
            chunk = Chunk(
                chunk.t, chunk.values[:, self._cols], chunk.labels, chunk.max_step, chunk.finite
            )
        if self._limits is not None and len(chunk):
            hit = (np.abs(chunk.values) >= self._limits).any(axis=1)
            if hit.any():
                self._saturated.extend(chunk.t[hit].tolist())
        if self._keep_history and len(chunk):
            hist = self._history
            hist.append(chunk)
            newest = float(chunk.t[-1])
            while len(hist) > 1 and float(hist[0].t[-1]) < newest - self._keep_s:
                hist.popleft()
        if self.active:
            if self.resampler is None:  # (the per-window path: one call fewer)
                self.ready.extend(self.windower.push(chunk))
            else:
                self._cut(chunk)

    def _cut(self, chunk: Chunk) -> None:
        if self.resampler is not None:
            chunk = self.resampler.push(chunk)
        self.ready.extend(self.windower.push(chunk))

    def keep_history(self) -> None:
        """Keep the last seconds of raw samples from now on (the agent may switch fronts)."""
        self._keep_history = True

    def idle(self) -> None:
        """Stop cutting windows; the raw history goes on for a later :meth:`activate`."""
        self._keep_history = True
        self.active = False
        self.ready.clear()

    def activate(self, next_start: float, next_index: int = 0) -> None:
        """Resume: resample and window the kept history as a fresh stream whose first window
        starts at ``next_start`` (stream seconds) when the history reaches back that far, and
        whose windows are numbered on from ``next_index``."""
        if self.active:
            return
        self.active = True
        hist = list(self._history)
        if self.resampler is not None:
            self.resampler = Resampler(self._in_rate, self._spec.rate_hz)
        self.windower = Windower(
            self._spec.window, len(self._spec.channels), next_index, copy=False
        )
        if not hist:
            return
        t = np.concatenate([c.t for c in hist])
        values = np.concatenate([c.values for c in hist])
        labelled = all(c.labels is not None for c in hist)
        labels = tuple(lbl for c in hist for lbl in (c.labels or ())) if labelled else None
        # the resampler's first output is half its filter after its first input
        delay = self.resampler.delay_s if self.resampler is not None else 0.0
        first = int(np.searchsorted(t, next_start - delay - 1e-9))
        if first >= len(t):
            first = 0
        finite = all(c.finite for c in hist)
        self._cut(
            Chunk(t[first:], values[first:], labels[first:] if labels else None, None, finite)
        )

    def saturated(self, w: Window) -> bool:
        """Whether any source sample within the window's span was saturated."""
        sat = self._saturated
        if not sat:
            return False
        while sat and sat[0] < w.start_t - 1.0:  # older than any window still to come
            sat.popleft()
        return any(w.start_t <= t <= w.end_t for t in sat)
