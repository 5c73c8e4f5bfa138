"""Sample sources: the :class:`Source` protocol and the recorded-session replay.

A source yields :class:`~agent.recording.Chunk` objects in time order and describes itself with a
:class:`~agent.recording.RecordingHeader` (rate, channels, units, labels). Live I2C sensors plug in
behind the same protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from agent.clock import Clock
from agent.errors import RecordingError
from agent.recording import Chunk, RecordingReader
from agent.recording_header import RecordingHeader

LOOP_GAP_S = 10.0
"""When a replay loops, the next pass starts this long after the last sample: a gap, so no
window is cut across the splice."""


def _nothing_to_loop(path: Path) -> str:
    return f"{path}: holds no samples, so there is nothing to loop over (source.loop = true)"


class Source(Protocol):
    header: RecordingHeader

    def chunks(self) -> Iterator[Chunk]:
        """Yield samples in time order until the source ends or the stop event is set."""

    def close(self) -> None:
        """Let go of what the source holds (a sensor's I2C bus and its claim on the chip);
        safe to call more than once, and whether or not :meth:`chunks` ever ran. The agent
        calls it however the run ends: a generator that never started never runs its own
        ``finally``."""


class ReplaySource:
    """Replay a recording, paced at ``speed`` times real time (0 = as fast as possible)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock,
        stop: threading.Event,
        speed: float = 1.0,
        chunk_samples: int = 10,
        loop: bool = False,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._stop = stop
        self.speed = speed
        self.chunk_samples = chunk_samples
        self.loop = loop
        reader = RecordingReader(self.path)  # validates the header now: fail before we start
        try:
            # looping over no samples would end at once, as if the replay had finished
            if loop and next(reader.chunks(1), None) is None:
                raise RecordingError(_nothing_to_loop(self.path))
        finally:
            reader.close()
        self.header = reader.header
        self.passes = 0

    def chunks(self) -> Iterator[Chunk]:
        offset = 0.0
        t0 = self._clock.monotonic()
        while not self._stop.is_set():
            first_t: float | None = None
            last: Chunk | None = None
            for chunk in RecordingReader(self.path).chunks(self.chunk_samples):
                if self._stop.is_set():
                    return
                if first_t is None:
                    first_t = float(chunk.t[0])
                if self.speed > 0:
                    due = t0 + (offset + float(chunk.t[-1]) - first_t) / self.speed
                    if not self._clock.sleep_until(due, self._stop):
                        return
                last = chunk
                # (shifted times round differently: the chunk's step bound no longer holds)
                yield replace(chunk, t=chunk.t + offset, max_step=None) if offset else chunk
            self.passes += 1
            if self.loop and (first_t is None or last is None):  # emptied since we started
                raise RecordingError(_nothing_to_loop(self.path))
            if not self.loop or first_t is None or last is None:
                return
            offset += float(last.t[-1]) - first_t + LOOP_GAP_S

    def close(self) -> None:
        """Nothing to let go of: each pass opens the recording and closes it when it ends."""
