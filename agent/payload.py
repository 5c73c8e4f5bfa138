"""MQTT topics and the prediction payload (schema ``har.prediction/1``), pure encoding.

docs/mqtt.md is the user-facing description; tests/agent/test_payload.py pins the schema.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    t = origin + timedelta(seconds=offset_s)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_unix(ts: float) -> str:
    """Unix seconds as an ISO 8601 UTC string with millisecond precision."""
    return iso_at(datetime.fromtimestamp(0, UTC), ts)


@dataclass(frozen=True)
class Prediction:
    device: str
    seq: int
    window_index: int
    window_start: str
    window_end: str
    labels: tuple[str, ...]
    probs: tuple[float, ...]
    index: int
    model: str
    latency_ms: float
    published_at: str
    smoothed_index: int | None = None
    smoothed_confidence: float | None = None
    smoothing: str = "none"
    smoothing_window: int = 1
    truth: str | None = None

    @property
    def label(self) -> str:
        return self.labels[self.index]


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if math.isfinite(x) else 0.0


def encode_prediction(p: Prediction) -> bytes:
    body: dict[str, Any] = {
        "schema": PREDICTION_SCHEMA,
        "device": p.device,
        "seq": p.seq,
        "window": {"index": p.window_index, "start": p.window_start, "end": p.window_end},
        "label": p.label,
        "confidence": _r(p.probs[p.index]),
        "probs": {lbl: _r(v) for lbl, v in zip(p.labels, p.probs, strict=True)},
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
