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


_MILLIS = tuple(b"%03dZ" % ms for ms in range(1000))
_SECONDS = tuple(b"%02d." % sec for sec in range(60))


class IsoFormatter:
    """:func:`iso_from_unix` for the hot path: the same text as ASCII bytes (what the payload
    template takes), with the text up to the minute cached for recently seen minutes and the
    seconds and milliseconds from tables (a prediction carries three timestamps; every one is
    then a dictionary lookup and three joins, where a new second used to cost a formatted
    string).

    The microseconds are rounded the way ``datetime.fromtimestamp`` rounds them (half to even
    on the fraction times 10^6), then truncated to milliseconds like ``isoformat`` does.
    """

    MAX_MINUTES = 16

    def __init__(self) -> None:
        self._minutes: dict[int, bytes] = {}

    def __call__(self, ts: float) -> bytes:
        frac, whole = math.modf(ts)
        us = round(frac * 1e6)
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1.0
        elif us < 0:
            us += 1_000_000
            whole -= 1.0
        minute, sec = divmod(int(whole), 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            prefix = self._minute(minute)
        return prefix + _SECONDS[sec] + _MILLIS[us // 1000]

    def _minute(self, minute: int) -> bytes:
        """``YYYY-MM-DDTHH:MM:`` of a minute (since the epoch), remembered."""
        if len(self._minutes) >= self.MAX_MINUTES:
            self._minutes.clear()
        # exactly as isoformat writes it
        text = datetime.fromtimestamp(minute * 60, UTC).isoformat()[:17]
        prefix = self._minutes[minute] = text.encode("ascii")
        return prefix


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
    """The hot-path encoder: the same JSON values as :func:`encode_prediction` (tests compare
    them), with every constant part (device, labels, model, smoothing) escaped once up front and
    the variable parts filled into one %-template (four: with or without the smoothed prediction
    and the truth label) in one C-level call.

    Probabilities and confidences are written with four decimals (``0.9731``, ``0.0100``),
    the latency with three: ``%.4f`` rounds correctly, so each number reads back as exactly
    ``round(v, 4)`` (``round(latency_ms, 3)``), what the reference writes, formatted by the
    template itself instead of a Python call per number. NaN and infinities (JSON has
    neither; the classifier never hands them on) are written as 0."""

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
        self._n = len(labels)
        labels_json = [json.dumps(lbl) for lbl in labels]  # (ASCII: json.dumps escapes the rest)
        self._labels_json = [lj.encode("ascii") for lj in labels_json]
        head = (
            '{"schema":'
            + json.dumps(PREDICTION_SCHEMA)
            + ',"device":'
            + json.dumps(device)
            + ',"boot":'
            + json.dumps(boot)
        )
        probs = ",".join(_pct(lj) + ":%.4f" for lj in labels_json)
        front = (
            _pct(head)
            + ',"seq":%d,"window":{"index":%d,"start":"%s","end":"%s"}'
            + ',"label":%s,"confidence":%.4f,"probs":{'
            + probs
            + "}"
        )
        smoothed = ',"smoothed":{"label":%s,"confidence":%.4f' + _pct(
            ',"method":' + json.dumps(smoothing) + ',"window":' + str(window) + "}"
        )
        tail = _pct(',"model":' + json.dumps(model)) + ',"latency_ms":%.3f,"ts":"%s"'
        # [smoothed given][truth given]; bytes: the payload is formatted as bytes directly
        self._templates = (
            (
                (front + ',"smoothed":null' + tail + "}").encode("ascii"),
                (front + ',"smoothed":null' + tail + ',"truth":%s}').encode("ascii"),
            ),
            (
                (front + smoothed + tail + "}").encode("ascii"),
                (front + smoothed + tail + ',"truth":%s}').encode("ascii"),
            ),
        )
        self._truths: dict[str, bytes] = {}

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
            window_start.encode(),
            window_end.encode(),
            probs,
            index,
            latency_ms,
            published_at.encode(),
            smoothed_index,
            smoothed_confidence,
            truth,
        )

    def encode_window(
        self,
        seq: int,
        window_index: int,
        window_start: bytes,
        window_end: bytes,
        probs: Sequence[float],
        index: int,
        latency_ms: float,
        published_at: bytes,
        smoothed_index: int | None,
        smoothed_confidence: float | None,
        truth: str | None,
    ) -> bytes:
        """:meth:`encode` with positional arguments and the timestamps as ASCII bytes (the
        pipeline's call, with :class:`IsoFormatter`'s timestamps)."""
        if len(probs) != self._n:
            raise ValueError(f"{len(probs)} probabilities for {self._n} labels")
        lat = latency_ms
        conf = smoothed_confidence
        # one sum: NaN or an infinity anywhere makes it non-finite (finite values that overflow
        # it only take the careful path for nothing)
        if not math.isfinite(sum(probs) + lat + (conf or 0.0)):
            probs = [v if math.isfinite(v) else 0.0 for v in probs]
            lat = lat if math.isfinite(lat) else 0.0
            conf = conf if conf is None or math.isfinite(conf) else 0.0
        head = (seq, window_index, window_start, window_end, self._labels_json[index], probs[index])
        if smoothed_index is None or conf is None:
            if truth is None:
                return self._templates[0][0] % (*head, *probs, lat, published_at)
            template = self._templates[0][1]
            args = (*head, *probs, lat, published_at, self._truth_json(truth))
        else:
            smoothed = (self._labels_json[smoothed_index], conf)
            if truth is None:
                template = self._templates[1][0]
                args = (*head, *probs, *smoothed, lat, published_at)
            else:
                template = self._templates[1][1]
                args = (*head, *probs, *smoothed, lat, published_at, self._truth_json(truth))
        return template % args

    def _truth_json(self, truth: str) -> bytes:
        tj = self._truths.get(truth)
        if tj is None:
            tj = json.dumps(truth).encode("ascii")
            if len(self._truths) < self.MAX_TRUTHS:
                self._truths[truth] = tj
        return tj


def _pct(text: str) -> str:
    """``text`` as a literal part of a %-template."""
    return text.replace("%", "%%")
