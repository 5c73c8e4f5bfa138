"""The latency model: how long each bank member will take on this board, now.

Seeded from a benchmark table (``har-agent bench -m all --table``) or the bank's own latency
figures (paced ones where the manifest has them: :func:`bank_latencies`), and corrected online
in two ways:

- **The board's contention factor.** Each observed latency of the running member, divided by
  that member's table figure, updates an exponentially weighted mean of the ratio and of its
  deviation (the way TCP estimates round-trip times). A prediction is the table figure times
  ``mean + k * deviation``: a bound the member should stay under, not its average, since a
  deadline is missed in the tail. It applies to every member.
- **What each member showed under the present load.** Contention does not slow every member
  alike: a long inference is time-sliced by competing processes, a short one mostly is not. So
  each member also keeps its own bound from its own observations, and a prediction takes the
  larger of the two. A member's own bound is forgotten when the load *of other processes* falls
  well below the level it was observed at (the load that slowed it has gone; our own CPU use is
  left out, since it changes with the member that runs), or after ``memory`` further
  observations (so the policy tries it again now and then, at a rate tied to the window rate).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.manifest import ModelEntry

TABLE_VERSION = 1
MAX_RATIO = 4.0
"""Largest slowdown one observation may count for (relative to the current estimate)."""
RECENT = 50
"""Observations after which a member no longer takes a newly measured load as its own."""


MIN_TABLE_MS = 0.001
"""No ``session.run`` takes less than a microsecond: a smaller figure is a broken table."""
MAX_TABLE_MS = 600_000.0


def load_latency_table(path: Path) -> dict[str, float]:
    """Per-member p50 milliseconds from a ``har-agent bench -m all --table`` file."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such latency table") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the latency table ({exc})") from exc
    except RecursionError:
        raise ConfigError(f"{path}: cannot read the latency table (nested too deeply)") from None
    if not isinstance(raw, dict) or raw.get("table_version") != TABLE_VERSION:
        raise ConfigError(f"{path}: not a version {TABLE_VERSION} latency table")
    models = raw.get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: the latency table has no 'models' object")
    out: dict[str, float] = {}
    for mid, row in models.items():
        p50 = row.get("p50_ms") if isinstance(row, dict) else None
        ms = float(p50) if isinstance(p50, int | float) and not isinstance(p50, bool) else None
        if ms is None or not MIN_TABLE_MS <= ms <= MAX_TABLE_MS:  # NaN and Infinity too
            raise ConfigError(
                f"{path}: models.{mid}.p50_ms must be a number of milliseconds between "
                f"{MIN_TABLE_MS:g} and {MAX_TABLE_MS:g} (got {p50!r})"
            )
        out[str(mid)] = ms
    return out


def bank_latencies(entries: list[ModelEntry]) -> dict[str, float]:
    """Per-member p50 milliseconds from the manifest (the building machine): the paced figure
    (``paced_p50``: runs timed one at a time after a pause, as the daemon runs a model, written
    by ``python -m tools.bank.paced_latency``) when every member has one, else the back-to-back
    ``p50`` (a member rebuilt since the paced run has none): the two sorts are never mixed."""
    paced = all(_ms(e.latency_ms.get("paced_p50")) for e in entries)
    key = "paced_p50" if paced else "p50"
    out: dict[str, float] = {}
    for e in entries:
        ms = _ms(e.latency_ms.get(key))
        if ms:
            out[e.id] = ms
    return out


def _ms(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


@dataclass
class _Own:
    """One member's own latency ratio, when it was last seen (in observations) and under what
    load of other processes (cores)."""

    factor: float
    deviation: float
    seen: int = 0
    load: float | None = None


class LatencyModel:
    """Expected per-window latency of each member under the current contention."""

    def __init__(
        self,
        base_ms: Mapping[str, float],
        alpha: float = 0.2,
        k: float = 2.0,
        *,
        memory: int = 300,
        load_drop: float = 0.5,
    ) -> None:
        if not base_ms:
            raise ConfigError("the latency model needs at least one member's latency")
        self.base_ms = dict(base_ms)
        self.alpha = alpha
        self.k = k
        self.memory = memory
        self.load_drop = load_drop
        """Cores' worth of other processes' load that must go to forget a member's bound."""
        self._load: float | None = None
        self._own: dict[str, _Own] = {}
        self.factor = 1.0
        """Smoothed observed/table latency ratio: 1.0 on an idle board like the table's."""
        self.deviation = 0.0
        self.observations = 0
        self._lock = threading.Lock()

    def observe(self, model_id: str, observed_ms: float) -> None:
        base = self.base_ms.get(model_id)
        if base is None or not observed_ms > 0:
            return
        # winsorised: one preemption spike (tens of ms whatever the member) moves the estimate
        # as much as a 4x slowdown would, not as much as a 30x one
        ratio = min(observed_ms / base, MAX_RATIO * max(self.factor, 1.0))
        a = self.alpha
        with self._lock:
            board = (self.factor, self.deviation)  # before this observation
            self.deviation = (1 - a) * self.deviation + a * abs(ratio - self.factor)
            self.factor = (1 - a) * self.factor + a * ratio
            self.observations += 1
            own = self._own.get(model_id)
            if own is None or not self._remembered(own):
                # start from the board's estimate as it was, then take this observation once:
                # one slow first run (cold caches after a switch) must not brand a member, nor
                # may what it showed under a gone load
                own = self._own[model_id] = _Own(*board)
            own.deviation = (1 - a) * own.deviation + a * abs(ratio - own.factor)
            own.factor = (1 - a) * own.factor + a * ratio
            own.seen = self.observations
            own.load = self._load

    def set_load(self, others_cores: float | None) -> None:
        """Other processes' CPU use now, in cores (from the resource monitor's snapshot).

        The load that slowed a member is often measured only after the member was switched
        away from (the monitor samples once a second): members seen in the last
        :data:`RECENT` observations take the new load as theirs too, if it is higher."""
        with self._lock:
            self._load = others_cores
            if others_cores is None:
                return
            for own in self._own.values():
                if self.observations - own.seen <= RECENT and (
                    own.load is None or own.load < others_cores
                ):
                    own.load = others_cores

    def bound(self) -> float:
        """The multiplier applied to every table figure: ``factor + k * deviation``."""
        with self._lock:
            return self.factor + self.k * self.deviation

    def _remembered(self, own: _Own) -> bool:
        """Whether a member's own bound still holds (not too old, its load not gone)."""
        if self.observations - own.seen > self.memory:
            return False
        return not (
            own.load is not None
            and self._load is not None
            and self._load < own.load - self.load_drop
        )

    def _own_bound(self, model_id: str) -> float:
        own = self._own.get(model_id)
        if own is None or not self._remembered(own):
            return 0.0
        return own.factor + self.k * own.deviation

    def predict(self, model_id: str) -> float:
        """Milliseconds ``model_id`` should stay under now."""
        with self._lock:
            b = max(self.factor + self.k * self.deviation, self._own_bound(model_id))
        return self.base_ms[model_id] * b

    def predict_all(self) -> dict[str, float]:
        with self._lock:
            g = self.factor + self.k * self.deviation
            return {mid: ms * max(g, self._own_bound(mid)) for mid, ms in self.base_ms.items()}
