"""The hot loop: source -> channel selection -> resampler -> windower -> classifier -> smoother
-> payload -> publisher. Everything is passed in; nothing here opens files, sockets or clocks.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from agent.adaptive import Controller, SwitchOrder
from agent.clock import Clock
from agent.commands import MAX_COMMANDS_PER_STEP, handle_command
from agent.config_event import encode_config
from agent.fronts import Front, FrontKey
from agent.inference import Classifier, NonFiniteOutputs
from agent.manifest import InputSpec
from agent.payload import IsoFormatter, Prediction, PredictionEncoder, Topics, iso_from_unix
from agent.publishers import Command, Publisher
from agent.recording import Chunk
from agent.resampling import Resampler
from agent.run_stats import RunStats
from agent.sensors.health import health_of
from agent.smoothing import Smoother
from agent.sources import Source
from agent.strict_json import strict_json
from agent.windowing import Window, Windower

log = logging.getLogger(__name__)


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
        controller: Controller | None = None,
        extra_specs: tuple[InputSpec, ...] = (),
    ) -> None:
        """``controller`` switches members at run time; ``extra_specs`` are the input specs of
        the members it may switch to (one front each keeps running)."""
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
        self._chunk_untimed_s = 0.0
        """Time of this chunk that is not the agent's overhead: inside ``session.run``, and the
        benchmark's own record keeping (``record_timings``)."""
        self._last_infer_s = 0.0
        self._rejecting: str | None = None  # why the current run of windows is rejected
        self.observer = observer
        self.heartbeat = heartbeat
        self.topic_handlers = topic_handlers or {}
        self.metrics = metrics
        self.metrics_every_s = metrics_every_s
        self._next_metrics = 0.0
        self.controller = controller
        self.fronts: dict[FrontKey, Front] = {}
        for spec in (entry.input, *extra_specs):
            if FrontKey.of(spec) not in self.fronts:
                self.fronts[FrontKey.of(spec)] = Front(source.header, spec, source_name)
        self._front = self.fronts[FrontKey.of(entry.input)]
        for front in self.fronts.values():
            if front is not self._front:
                front.idle()
            elif len(self.fronts) > 1:
                front.keep_history()
        self._last_start = float("-inf")
        self._last_index = -1
        self.seq = 0
        self.stats = RunStats()
        self._started = clock.monotonic()
        self._origin_ts = origin.timestamp()
        self._iso = IsoFormatter()
        self._ones_cache = np.ones(0, dtype=np.float32)
        self._prediction_topic = topics.prediction
        self._smoothing = smoother.method != "none"
        self.boot_id = uuid.uuid4().hex[:16]
        """Names this run of the agent: (device, boot, seq) identifies every prediction."""
        self._encoders: dict[str, PredictionEncoder] = {}
        self._encoder = self._encoder_for(classifier)
        self._health = health_of(source)  # live sensors' (set when they are made), else None
        self._health_seen = 0  # live sensors: last health version published (docs/mqtt.md)
        self._commands: deque[Command] = deque()  # received, beyond this step's share
        self._config_sent = False

    @property
    def resampler(self) -> Resampler | None:
        """The running member's resampler (``None`` when the source runs at its rate)."""
        return self._front.resampler

    @property
    def windower(self) -> Windower:
        return self._front.windower

    def _encoder_for(self, classifier: Classifier) -> PredictionEncoder:
        e = classifier.entry
        enc = self._encoders.get(e.id)
        if enc is None:
            enc = PredictionEncoder(
                self.device_id, e.labels, e.id, self.smoother.method, self.smoother.k, self.boot_id
            )
            self._encoders[e.id] = enc
        return enc

    def _publish_config(self, reason: str, order: SwitchOrder | None = None) -> None:
        """The retained configuration event (:mod:`agent.config_event`)."""
        payload = encode_config(
            device=self.device_id,
            boot=self.boot_id,
            at=iso_from_unix(self.clock.wall()),
            seq=self.seq,
            entry=self.classifier.entry,
            reason=reason,
            mode=self.controller.policy.mode if self.controller is not None else "static",
            order=order,
        )
        self.publisher.publish(self.topics.config, payload, qos=1, retain=True)

    def _switch(self, order: SwitchOrder) -> None:
        """Swap to the ordered member (its session is loaded): a reference assignment."""
        old = self.classifier.entry.id
        self.classifier = order.classifier
        self._encoder = self._encoder_for(order.classifier)
        front = self.fronts[FrontKey.of(order.classifier.entry.input)]
        if front is not self._front:
            self._front.idle()
            front.activate(self._last_start + front.hop_s, self._last_index + 1)
            self._front = front
        self.stats.switches += 1
        log.info(
            "switched %s -> %s (%s; predicted %.3f ms, budget %.3f ms)",
            old,
            order.target,
            order.reason,
            order.predicted_ms,
            order.budget_ms,
        )
        self._publish_config(order.reason, order)

    def status(self) -> dict[str, Any]:
        out = {
            "device": self.device_id,
            "boot": self.boot_id,
            "model": self.classifier.entry.id,
            "windows": self.stats.windows,
            "rejected": self.stats.rejected,
            "saturated": self.stats.saturated,
            "seq": self.seq,
            "uptime_s": round(self.clock.monotonic() - self._started, 1),
        }
        if self.controller is not None:
            out["adaptive"] = self.controller.status()
        return out

    def _metrics_body(self) -> dict[str, Any]:
        """What the metrics topic carries: the status, then resources, energy and outbox."""
        return {**self.status(), **(self.metrics() if self.metrics is not None else {})}

    def _publish_metrics(self) -> None:
        """The retained metrics snapshot (QoS 0: telemetry, the next one supersedes it)."""
        body = strict_json(self._metrics_body())
        self.publisher.publish(self.topics.metrics, body, qos=0, retain=True)

    def process(self, chunk: Chunk) -> int:
        """Run one chunk through to the publisher; return the number of windows it completed."""
        commands = self.publisher.poll()
        if commands or self._commands:
            self._handle_commands(commands)
        health = self._health
        if health is not None and health.version != self._health_seen:
            self._health_seen = health.version
            self.publisher.publish(f"{self.topics.base}/health", health.payload(), 1, retain=True)
        if self.metrics is not None and self.clock.monotonic() >= self._next_metrics:
            self._next_metrics = self.clock.monotonic() + self.metrics_every_s
            self._publish_metrics()
        if not self._config_sent:
            self._config_sent = True
            self._publish_config("start")
        for front in self.fronts.values():
            front.push(chunk)
        ctl = self.controller
        if ctl is not None:
            order = ctl.take()
            if order is not None:
                self._switch(order)
        done = 0
        while self._front.ready:
            w = self._front.ready.popleft()
            # after a switch, the new front may hold windows that cover time already predicted
            if w.start_t < self._last_start + 0.5 * self._front.hop_s:
                continue
            self._last_start = w.start_t
            self._last_index = w.index
            self._classify(w)
            done += 1
            if ctl is not None and self._last_infer_s > 0:
                ctl.observe(self.classifier.entry.id, self._last_infer_s)
                order = ctl.take()
                if order is not None:
                    self._switch(order)
        return done

    def _handle_commands(self, commands: list[Command]) -> None:
        """Answer at most ``MAX_COMMANDS_PER_STEP`` commands, oldest first; the rest wait for the
        next step (the MQTT link hands over no more than that per poll, and bounds what waits)."""
        waiting = self._commands
        for msg in commands:  # messages of other subscriptions (HA's status) are not capped
            handler = self.topic_handlers.get(msg.topic)
            if handler is not None:
                handler(msg.payload)
            else:
                waiting.append(msg)
        reply = self.publisher.reply
        for _ in range(min(len(waiting), MAX_COMMANDS_PER_STEP)):
            cmd = waiting.popleft()
            try:
                answer = handle_command(
                    cmd.payload, self.status, self.controller, self._metrics_body
                )
            except Exception:  # a bug in a handler must not stop the agent
                log.exception("command handling failed")
                answer = b'{"ok":false,"error":"internal error"}'
            reply(self.topics.response, answer)  # a broker's live link only: never the outbox

    def _classify(self, w: Window) -> None:
        """Classify one window and publish its prediction (or count it rejected)."""
        stats = self.stats
        self._last_infer_s = 0.0
        data = w.data
        bad = None
        # windows of samples the recording reader checked skip the check (a sensor's and
        # resampled ones do not); otherwise one BLAS dot instead of isfinite + all: NaN or Inf
        # anywhere makes it non-finite (a finite window can overflow it, so the exact check
        # decides then)
        if (
            not w.finite
            and not math.isfinite(np.dot(data.reshape(-1), self._ones(data.size)))
            and not bool(np.isfinite(data).all())
        ):
            bad = "holds NaN or Inf samples"
        elif self._front.saturated(w):
            bad = "holds saturated samples (at the sensor's full scale)"
            stats.saturated += 1
        if bad is not None:
            self._reject(w, bad, "not classified")
            return
        try:
            c = self.classifier.classify(data)
        except NonFiniteOutputs as exc:
            self._chunk_untimed_s += exc.args[0]  # session.run time, not the agent's overhead
            self._reject(
                w, "gives NaN or Inf model outputs (samples out of range)", "not published"
            )
            return
        if self._rejecting:
            log.info("good samples again (%d windows rejected so far)", stats.rejected)
            self._rejecting = None
        probs = c.values
        smoothed_index: int | None = None
        smoothed_confidence: float | None = None
        if self._smoothing:
            sm = self.smoother.update_values(probs)
            smoothed_index, smoothed_confidence = sm.index, sm.confidence
        iso = self._iso
        origin = self._origin_ts
        start = iso(origin + w.start_t)
        end = iso(origin + w.end_t)
        published_at = iso(self.clock.wall())
        latency_ms = c.infer_s * 1000.0
        payload = self._encoder.encode_window(
            self.seq,
            w.index,
            start,
            end,
            probs,
            c.index,
            latency_ms,
            published_at,
            smoothed_index,
            smoothed_confidence,
            w.label,
        )
        self.publisher.publish(self._prediction_topic, payload, qos=self.qos)
        if self.observer is not None:
            entry = self.classifier.entry
            self.observer(
                Prediction(
                    device=self.device_id,
                    seq=self.seq,
                    window_index=w.index,
                    window_start=start.decode(),
                    window_end=end.decode(),
                    labels=entry.labels,
                    probs=probs,
                    index=c.index,
                    model=entry.id,
                    latency_ms=latency_ms,
                    published_at=published_at.decode(),
                    smoothed_index=smoothed_index,
                    smoothed_confidence=smoothed_confidence,
                    smoothing=self.smoother.method,
                    smoothing_window=self.smoother.k,
                    truth=w.label,
                    boot=self.boot_id,
                )
            )
        self.seq += 1
        stats.windows += 1
        self._chunk_untimed_s += c.infer_s
        self._last_infer_s = c.infer_s
        if self.record_timings:  # the benchmark's bookkeeping: not timed as the agent's work
            t0 = self.clock.perf()
            stats.infer_s.append(c.infer_s)
            stats.predictions.append(c.index)
            stats.windows_data.append(data.copy())  # a view of the windower's buffer
            stats.models.append(self.classifier.entry.id)
            self._chunk_untimed_s += self.clock.perf() - t0
        if w.label is not None:
            stats.score(w.label, self.classifier.entry, c.index)

    def _reject(self, w: Window, why: str, what: str) -> None:
        """Count a window without a prediction; log when a run of them starts, or its reason
        changes."""
        self.stats.rejected += 1
        if self._rejecting != why:
            log.warning("window %d %s: %s", w.index, why, what)
            self._rejecting = why

    def _ones(self, n: int) -> np.ndarray:
        ones = self._ones_cache
        if ones.shape[0] != n:
            ones = self._ones_cache = np.ones(n, dtype=np.float32)
        return ones

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
            self._chunk_untimed_s = 0.0
            published = stats.windows
            self.process(chunk)
            t2 = perf()
            stats.samples += chunk.t.shape[0]
            if self.record_timings:
                stats.read_s.append(t1 - t0)
                stats.process_s.append(t2 - t1 - self._chunk_untimed_s)
                # windows published: a rejected window has no timing row of its own
                stats.windows_per_chunk.append(stats.windows - published)
            if self.heartbeat is not None:
                self.heartbeat(self.clock.monotonic())
        stats.wall_s = perf() - started
        if self.metrics is not None:  # the retained snapshot ends with the run's own figures
            self._publish_metrics()
        return stats
