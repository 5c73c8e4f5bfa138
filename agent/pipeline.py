"""The hot loop: source -> channel selection -> resampler -> windower -> classifier -> smoother
-> payload -> publisher. Everything is passed in; nothing here opens files, sockets or clocks.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from agent.clock import Clock
from agent.commands import handle_command
from agent.errors import DataError
from agent.inference import Classifier
from agent.payload import Prediction, PredictionEncoder, Topics, iso_from_unix
from agent.publishers import Publisher
from agent.recording import Chunk, RecordingHeader
from agent.sensors.health import health_of
from agent.smoothing import Smoother
from agent.sources import Source
from agent.windowing import Resampler, Windower

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What one run did. The per-chunk and per-window lists are filled only when the pipeline
    records timings (benchmarks): a daemon that runs for months keeps counters alone."""

    windows: int = 0
    labelled: int = 0
    correct: int = 0
    samples: int = 0
    rejected: int = 0
    """Windows not classified because they held NaN or Inf."""
    read_s: list[float] = field(default_factory=list)
    process_s: list[float] = field(default_factory=list)
    infer_s: list[float] = field(default_factory=list)
    windows_per_chunk: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    predictions: list[int] = field(default_factory=list)
    windows_data: list[np.ndarray] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


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


class Pipeline:
    def __init__(
        self,
        *,
        source: Source,
        source_name: str,
        classifier: Classifier,
        smoother: Smoother,
        publisher: Publisher,
        topics: Topics,
        device_id: str,
        clock: Clock,
        stop: threading.Event,
        origin: datetime,
        qos: int = 1,
        record_timings: bool = False,
        observer: Callable[[Prediction], None] | None = None,
        heartbeat: Callable[[float], None] | None = None,
        topic_handlers: dict[str, Callable[[bytes], None]] | None = None,
        metrics: Callable[[], dict[str, Any]] | None = None,
        metrics_every_s: float = 60.0,
    ) -> None:
        entry = classifier.entry
        self.source = source
        self.classifier = classifier
        self.smoother = smoother
        self.publisher = publisher
        self.topics = topics
        self.device_id = device_id
        self.clock = clock
        self.stop = stop
        self.origin = origin
        self.qos = qos
        self.record_timings = record_timings
        self._chunk_infer_s = 0.0
        self._rejecting = False
        self.observer = observer
        self.heartbeat = heartbeat
        self.topic_handlers = topic_handlers or {}
        self.metrics = metrics
        self.metrics_every_s = metrics_every_s
        self._next_metrics = 0.0
        spec = entry.input
        self._cols = channel_indices(source.header, spec.channels, spec.units, source_name)
        self._identity_cols = self._cols == list(range(len(source.header.channels)))
        rate = source.header.sample_rate_hz
        self.resampler = Resampler(rate, spec.rate_hz) if abs(rate - spec.rate_hz) > 1e-9 else None
        if self.resampler:
            log.info(
                "resampling %s from %g Hz to the model's %g Hz", source_name, rate, spec.rate_hz
            )
        self.windower = Windower(spec.window, len(spec.channels))
        self.seq = 0
        self.stats = RunStats()
        self._started = clock.monotonic()
        self._origin_ts = origin.timestamp()
        self.boot_id = uuid.uuid4().hex[:16]
        """Names this run of the agent: (device, boot, seq) identifies every prediction."""
        self._encoder = PredictionEncoder(
            device_id, entry.labels, entry.id, smoother.method, smoother.k, self.boot_id
        )
        self._health_seen = 0  # live sensors: last health version published (docs/mqtt.md)

    def status(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "boot": self.boot_id,
            "model": self.classifier.entry.id,
            "windows": self.stats.windows,
            "rejected": self.stats.rejected,
            "seq": self.seq,
            "uptime_s": round(self.clock.monotonic() - self._started, 1),
        }

    def _prepare(self, chunk: Chunk) -> Chunk:
        if not self._identity_cols:
            chunk = Chunk(chunk.t, chunk.values[:, self._cols], chunk.labels)
        if self.resampler is not None:
            chunk = self.resampler.push(chunk)
        return chunk

    def process(self, chunk: Chunk) -> int:
        """Run one chunk through to the publisher; return the number of windows it completed."""
        entry = self.classifier.entry
        stats = self.stats
        for cmd in self.publisher.poll():
            handler = self.topic_handlers.get(cmd.topic)
            if handler is not None:
                handler(cmd.payload)
                continue
            self.publisher.publish(
                self.topics.response, handle_command(cmd.payload, self.status()), qos=1
            )
        health = health_of(self.source)
        if health is not None and health.version != self._health_seen:
            self._health_seen = health.version
            self.publisher.publish(f"{self.topics.base}/health", health.payload(), 1, retain=True)
        if self.metrics is not None and self.clock.monotonic() >= self._next_metrics:
            self._next_metrics = self.clock.monotonic() + self.metrics_every_s
            body = {**self.status(), **self.metrics()}
            self.publisher.publish(
                self.topics.metrics,
                json.dumps(body, separators=(",", ":")).encode(),
                qos=0,
                retain=True,
            )
        windows = self.windower.push(self._prepare(chunk))
        smoothed = self.smoother.method != "none"
        encode = self._encoder.encode
        publish = self.publisher.publish
        topic = self.topics.prediction
        for w in windows:
            if not np.isfinite(w.data).all():
                stats.rejected += 1
                if not self._rejecting:
                    log.warning("window %d holds NaN or Inf samples: not classified", w.index)
                    self._rejecting = True
                continue
            if self._rejecting:
                log.info("finite samples again (%d windows rejected so far)", stats.rejected)
                self._rejecting = False
            c = self.classifier.classify(w.data)
            sm = self.smoother.update(c.probs)
            probs = c.probs.tolist()
            fields = {
                "seq": self.seq,
                "window_index": w.index,
                "window_start": iso_from_unix(self._origin_ts + w.start_t),
                "window_end": iso_from_unix(self._origin_ts + w.end_t),
                "probs": probs,
                "index": c.index,
                "latency_ms": c.infer_s * 1000.0,
                "published_at": iso_from_unix(self.clock.wall()),
                "smoothed_index": sm.index if smoothed else None,
                "smoothed_confidence": sm.confidence if smoothed else None,
                "truth": w.label,
            }
            publish(topic, encode(**fields), qos=self.qos)
            if self.observer is not None:
                self.observer(
                    Prediction(
                        device=self.device_id,
                        labels=entry.labels,
                        model=entry.id,
                        smoothing=self.smoother.method,
                        smoothing_window=self.smoother.k,
                        boot=self.boot_id,
                        **fields,
                    )
                )
            self.seq += 1
            stats.windows += 1
            self._chunk_infer_s += c.infer_s
            if self.record_timings:
                stats.infer_s.append(c.infer_s)
                stats.predictions.append(c.index)
                stats.windows_data.append(w.data)
            if w.label is not None:
                stats.labelled += 1
                stats.correct += int(entry.labels[c.index] == w.label)
        return len(windows)

    def run(self) -> RunStats:
        """Consume the source until it ends or the stop event is set."""
        perf = self.clock.perf
        stats = self.stats
        started = perf()
        it = iter(self.source.chunks())
        while not self.stop.is_set():
            t0 = perf()
            chunk = next(it, None)
            if chunk is None:
                break
            t1 = perf()
            self._chunk_infer_s = 0.0
            n = self.process(chunk)
            t2 = perf()
            stats.samples += len(chunk)
            if self.record_timings:
                stats.read_s.append(t1 - t0)
                stats.process_s.append(t2 - t1 - self._chunk_infer_s)
                stats.windows_per_chunk.append(n)
            if self.heartbeat is not None:
                self.heartbeat(self.clock.monotonic())
        stats.wall_s = perf() - started
        return stats
