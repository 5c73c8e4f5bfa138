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
    with every constant part (device, labels, model, smoothing) escaped once up front."""

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
        self._head = (
            '{"schema":'
            + json.dumps(PREDICTION_SCHEMA)
            + ',"device":'
            + json.dumps(device)
            + ',"boot":'
            + json.dumps(boot)
        )
        self._keys = [lj + ":" for lj in self._labels_json]
        self._model = ',"model":' + json.dumps(model)
        self._smooth_tail = ',"method":' + json.dumps(smoothing) + ',"window":' + str(window) + "}"

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
        rounded = [round(v, 4) if math.isfinite(v) else 0.0 for v in probs]
        parts = [
            self._head,
            ',"seq":',
            str(seq),
            ',"window":{"index":',
            str(window_index),
            ',"start":"',
            window_start,
            '","end":"',
            window_end,
            '"}',
            ',"label":',
            self._labels_json[index],
            ',"confidence":',
            repr(rounded[index]),
            ',"probs":{',
            ",".join(k + repr(v) for k, v in zip(self._keys, rounded, strict=True)),
            "}",
        ]
        if smoothed_index is None or smoothed_confidence is None:
            parts.append(',"smoothed":null')
        else:
            parts += [
                ',"smoothed":{"label":',
                self._labels_json[smoothed_index],
                ',"confidence":',
                repr(_r(smoothed_confidence)),
                self._smooth_tail,
            ]
        lat = round(latency_ms, 3) if math.isfinite(latency_ms) else 0.0
        parts += [self._model, ',"latency_ms":', repr(lat), ',"ts":"', published_at, '"']
        if truth is not None:
            parts += [',"truth":', json.dumps(truth)]
        parts.append("}")
        return "".join(parts).encode("utf-8")
