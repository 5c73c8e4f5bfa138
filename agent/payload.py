"""MQTT topics and the prediction payload (schema ``har.prediction/1``), pure encoding.

docs/mqtt.md is the user-facing description; tests/agent/test_payload.py pins the schema.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PREDICTION_SCHEMA = "har.prediction/1"


@dataclass(frozen=True)
class Topics:
    prefix: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    @property
    def prediction(self) -> str:
        return f"{self.base}/prediction"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def config(self) -> str:
        """Retained: the member running now and why (``har.config/1``)."""
        return f"{self.base}/config"

    @property
    def command(self) -> str:
        return f"{self.base}/cmd"

    @property
    def response(self) -> str:
        return f"{self.base}/cmd/response"


def parse_time(iso: str) -> datetime:
    """Parse an ISO 8601 time; naive times are taken as UTC."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso_at(origin: datetime, offset_s: float) -> str:
    """``origin + offset_s`` as an ISO 8601 UTC string with millisecond precision."""
    return iso_from_unix(origin.timestamp() + offset_s)


def iso_from_unix(ts: float) -> str:
    """Unix seconds as an ISO 8601 UTC string with millisecond precision."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class IsoFormatter:
    """:func:`iso_from_unix` for the hot path: the same strings, with the date and hour of
    recently seen hours cached (a prediction carries three timestamps).

    The microseconds are rounded the way ``datetime.fromtimestamp`` rounds them (half to even
    on the fraction times 10^6), then truncated to milliseconds like ``isoformat`` does.
    """

    MAX_HOURS = 16

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def __call__(self, ts: float) -> str:
        frac, whole = math.modf(ts)
        us = round(frac * 1e6)
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1.0
        elif us < 0:
            us += 1_000_000
            whole -= 1.0
        hour, rem = divmod(int(whole), 3600)
        prefix = self._hours.get(hour)
        if prefix is None:
            if len(self._hours) >= self.MAX_HOURS:
                self._hours.clear()
            # "YYYY-MM-DDTHH:" exactly as isoformat writes it
            prefix = datetime.fromtimestamp(hour * 3600, UTC).isoformat()[:14]
            self._hours[hour] = prefix
        minute, sec = divmod(rem, 60)
        return f"{prefix}{minute:02d}:{sec:02d}.{us // 1000:03d}Z"


@dataclass(frozen=True)
class Prediction:
    device: str
    seq: int
    window_index: int
    window_start: str
    window_end: str
    labels: tuple[str, ...]
    probs: Sequence[float]
    index: int
    model: str
    latency_ms: float
    published_at: str
    smoothed_index: int | None = None
    smoothed_confidence: float | None = None
    smoothing: str = "none"
    smoothing_window: int = 1
    truth: str | None = None
    boot: str = ""

    @property
    def label(self) -> str:
        return self.labels[self.index]


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if math.isfinite(x) else 0.0


def encode_prediction(p: Prediction) -> bytes:
    probs = [round(v, 4) if math.isfinite(v) else 0.0 for v in p.probs]
    body: dict[str, Any] = {
        "schema": PREDICTION_SCHEMA,
        "device": p.device,
        "boot": p.boot,
        "seq": p.seq,
        "window": {"index": p.window_index, "start": p.window_start, "end": p.window_end},
        "label": p.label,
        "confidence": probs[p.index],
        "probs": dict(zip(p.labels, probs, strict=True)),
        "smoothed": None,
        "model": p.model,
        "latency_ms": _r(p.latency_ms, 3),
        "ts": p.published_at,
    }
    if p.smoothed_index is not None and p.smoothed_confidence is not None:
        body["smoothed"] = {
            "label": p.labels[p.smoothed_index],
            "confidence": _r(p.smoothed_confidence),
            "method": p.smoothing,
            "window": p.smoothing_window,
        }
    if p.truth is not None:
        body["truth"] = p.truth
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class PredictionEncoder:
    """The hot-path encoder: the same bytes as :func:`encode_prediction` (tests compare them),
    with every constant part (device, labels, model, smoothing) escaped once up front and the
    variable parts filled into %-templates in a few C-level calls."""

    MAX_TRUTHS = 256

    def __init__(
        self,
        device: str,
        labels: tuple[str, ...],
        model: str,
        smoothing: str,
        window: int,
        boot: str = "",
    ) -> None:
        self.labels = labels
        self._labels_json = [json.dumps(lbl) for lbl in labels]
        head = (
            '{"schema":'
            + json.dumps(PREDICTION_SCHEMA)
            + ',"device":'
            + json.dumps(device)
            + ',"boot":'
            + json.dumps(boot)
        )
        probs = ",".join(_pct(lj) + ":%r" for lj in self._labels_json)
        self._front = (
            _pct(head)
            + ',"seq":%d,"window":{"index":%d,"start":"%s","end":"%s"}'
            + ',"label":%s,"confidence":%r,"probs":{'
            + probs
            + "}"
        )
        self._smoothed = ',"smoothed":{"label":%s,"confidence":%r' + _pct(
            ',"method":' + json.dumps(smoothing) + ',"window":' + str(window) + "}"
        )
        self._tail = _pct(',"model":' + json.dumps(model)) + ',"latency_ms":%r,"ts":"%s"'
        self._truths: dict[str, str] = {}

    def encode(
        self,
        *,
        seq: int,
        window_index: int,
        window_start: str,
        window_end: str,
        probs: Sequence[float],
        index: int,
        latency_ms: float,
        published_at: str,
        smoothed_index: int | None = None,
        smoothed_confidence: float | None = None,
        truth: str | None = None,
    ) -> bytes:
        return self.encode_window(
            seq,
            window_index,
            window_start,
            window_end,
            probs,
            index,
            latency_ms,
            published_at,
            smoothed_index,
            smoothed_confidence,
            truth,
        )

    def encode_window(
        self,
        seq: int,
        window_index: int,
        window_start: str,
        window_end: str,
        probs: Sequence[float],
        index: int,
        latency_ms: float,
        published_at: str,
        smoothed_index: int | None,
        smoothed_confidence: float | None,
        truth: str | None,
    ) -> bytes:
        """:meth:`encode` with positional arguments (the pipeline's call)."""
        if len(probs) != len(self.labels):
            raise ValueError(f"{len(probs)} probabilities for {len(self.labels)} labels")
        rounded = [round(v, 4) for v in probs]
        if not math.isfinite(sum(rounded)):  # NaN or Inf somewhere: written as 0.0
            rounded = [v if math.isfinite(v) else 0.0 for v in rounded]
        text = self._front % (
            seq,
            window_index,
            window_start,
            window_end,
            self._labels_json[index],
            rounded[index],
            *rounded,
        )
        if smoothed_index is None or smoothed_confidence is None:
            text += ',"smoothed":null'
        else:
            text += self._smoothed % (
                self._labels_json[smoothed_index],
                _r(smoothed_confidence),
            )
        lat = round(latency_ms, 3) if math.isfinite(latency_ms) else 0.0
        text += self._tail % (lat, published_at)
        if truth is not None:
            tj = self._truths.get(truth)
            if tj is None:
                tj = json.dumps(truth)
                if len(self._truths) < self.MAX_TRUTHS:
                    self._truths[truth] = tj
            text += ',"truth":' + tj
        return (text + "}").encode("utf-8")


def _pct(text: str) -> str:
    """``text`` as a literal part of a %-template."""
    return text.replace("%", "%%")
