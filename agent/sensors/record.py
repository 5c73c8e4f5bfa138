"""``har-agent record``: a live sensor session into the recording format (agent/recording.py).

The file is the same format the dataset import writes and ``replay`` reads: the source's rate,
channels and units, its start time, the sensor in ``source`` and the chip settings in ``meta``.
Gaps (a FIFO overflow, a re-initialised chip, a stuck stretch) stay gaps: ``t`` jumps. With a label
every sample carries it (``labelled``). Stopping (``stop`` set, Ctrl-C in the CLI) ends the
recording cleanly: the file is complete and keeps what was recorded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.clock import Clock
from agent.errors import ConfigError
from agent.profile import Profile
from agent.recording_csv import MAX_LABEL_CHARS
from agent.recording_writer import RecordingWriter
from agent.sensors.bus import BusFactory
from agent.sensors.source import open_sensor_source

log = logging.getLogger(__name__)

DURATION_GRACE_S = 5.0
"""How long past ``--duration`` (wall time) ``record`` waits for samples still in the FIFO."""

Progress = Callable[[int, float], None]
"""Called after each chunk with the samples written so far and the seconds recorded."""


@dataclass(frozen=True)
class RecordResult:
    path: Path
    samples: int
    duration_s: float
    gaps: int
    sensor: str


def check_label(label: str) -> None:
    if not label or len(label) > MAX_LABEL_CHARS or any(c in label for c in ',"\r\n'):
        raise ConfigError(
            f"--label must be 1-{MAX_LABEL_CHARS} characters without commas, quotes or "
            f"newlines (got {label!r})"
        )


def record_session(
    profile: Profile,
    out: Path,
    *,
    clock: Clock,
    stop: threading.Event,
    duration_s: float | None = None,
    label: str | None = None,
    bus_factory: BusFactory | None = None,
    progress: Progress | None = None,
) -> RecordResult:
    """Record the profile's ``[sensor]`` into ``out`` until ``duration_s`` or ``stop``."""
    if label is not None:
        check_label(label)
    if duration_s is not None and not duration_s > 0:
        raise ConfigError(f"--duration must be positive (got {duration_s:g})")
    source = open_sensor_source(
        profile.sensor,
        clock=clock,
        stop=stop,
        chunk_samples=profile.source.chunk_samples,
        bus_factory=bus_factory,
        where=str(profile.file),
    )
    header = replace(
        source.header,
        source={**source.header.source, "device": profile.device.id, "profile": profile.name},
        labelled=label is not None,
        labels=(label,) if label is not None else (),
        meta={**source.header.meta, "recorded_by": "har-agent record"},
    )
    first_t: float | None = None
    last_t = 0.0
    # --duration counts sample time; a sensor that delivers nothing (missing, stuck) must not
    # keep the command running for ever, so wall time ends it too, a little later
    wall_end = clock.monotonic() + duration_s + DURATION_GRACE_S if duration_s else None
    chunks = source.chunks()
    with RecordingWriter(out, header) as writer, contextlib.closing(chunks):
        for chunk in chunks:
            t, values = chunk.t, chunk.values
            if len(t) and first_t is None:
                first_t = float(t[0])
            if duration_s is not None and first_t is not None:
                keep = t < first_t + duration_s
                t, values = t[keep], values[keep]
            if len(t):
                writer.write(t, values, [label] * len(t) if label is not None else None)
                last_t = float(t[-1])
            if progress is not None:
                progress(writer.rows, last_t - first_t if first_t is not None else 0.0)
            if duration_s is not None and first_t is not None and len(t) < len(chunk):
                break
            if wall_end is not None and clock.monotonic() >= wall_end:
                log.warning(
                    "--duration %g s ended by the clock with %.1f s of samples (sensor faults?)",
                    duration_s,
                    last_t - first_t if first_t is not None else 0.0,
                )
                break
        rows = writer.rows
    span = last_t - first_t if first_t is not None else 0.0
    return RecordResult(out, rows, span, source.gaps, source.name)
