"""The latency model: how long each bank member will take on this board, now.

Seeded from a benchmark table (``har-agent bench all --table``) or the bank's own latency figures,
and corrected online. Contention slows every member by about the same factor, so one factor is
tracked for the board: each observed latency of the running member, divided by that member's table
figure, updates an exponentially weighted mean of the ratio and of its deviation (the way TCP
estimates round-trip times). A prediction is the table figure times ``mean + k * deviation``: a
bound the member should stay under, not its average, since a deadline is missed in the tail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.manifest import ModelEntry

TABLE_VERSION = 1


def load_latency_table(path: Path) -> dict[str, float]:
    """Per-member p50 milliseconds from a ``har-agent bench all --table`` file."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such latency table") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the latency table ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("table_version") != TABLE_VERSION:
        raise ConfigError(f"{path}: not a version {TABLE_VERSION} latency table")
    models = raw.get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: the latency table has no 'models' object")
    out: dict[str, float] = {}
    for mid, row in models.items():
        p50 = row.get("p50_ms") if isinstance(row, dict) else None
        if not isinstance(p50, int | float) or isinstance(p50, bool) or not p50 > 0:
            raise ConfigError(f"{path}: models.{mid}.p50_ms must be a positive number")
        out[str(mid)] = float(p50)
    return out


def bank_latencies(entries: list[ModelEntry]) -> dict[str, float]:
    """Per-member p50 milliseconds measured when the bank was built (the building machine)."""
    out: dict[str, float] = {}
    for e in entries:
        p50 = e.latency_ms.get("p50")
        if isinstance(p50, int | float) and p50 > 0:
            out[e.id] = float(p50)
    return out


class LatencyModel:
    """Expected per-window latency of each member under the current contention."""

    def __init__(self, base_ms: Mapping[str, float], alpha: float = 0.2, k: float = 2.0) -> None:
        if not base_ms:
            raise ConfigError("the latency model needs at least one member's latency")
        self.base_ms = dict(base_ms)
        self.alpha = alpha
        self.k = k
        self.factor = 1.0
        """Smoothed observed/table latency ratio: 1.0 on an idle board like the table's."""
        self.deviation = 0.0
        self.observations = 0
        self._lock = threading.Lock()

    def observe(self, model_id: str, observed_ms: float) -> None:
        base = self.base_ms.get(model_id)
        if base is None or not observed_ms > 0:
            return
        ratio = observed_ms / base
        a = self.alpha
        with self._lock:
            self.deviation = (1 - a) * self.deviation + a * abs(ratio - self.factor)
            self.factor = (1 - a) * self.factor + a * ratio
            self.observations += 1

    def bound(self) -> float:
        """The multiplier applied to table figures: ``factor + k * deviation``."""
        with self._lock:
            return self.factor + self.k * self.deviation

    def predict(self, model_id: str) -> float:
        """Milliseconds ``model_id`` should stay under now."""
        return self.base_ms[model_id] * self.bound()

    def predict_all(self) -> dict[str, float]:
        b = self.bound()
        return {mid: ms * b for mid, ms in self.base_ms.items()}
