"""The adaptive controller: joins the monitor, the latency model, the policy and the session pool.

Two threads talk to it. The monitor thread calls :meth:`Controller.on_snapshot` once per sample
and the policy decides there (step-ups, thermal steps). The pipeline thread calls
:meth:`Controller.observe` after every window (a few float operations; the policy runs only when
the running member is predicted over budget, for an immediate step-down) and :meth:`take` at each
window boundary, which hands over a switch whose session is already loaded: the swap itself is one
reference assignment in the pipeline, so switching never blocks the hot path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.inference import Classifier
from agent.latency import LatencyModel
from agent.monitor import ResourceSnapshot
from agent.policy import Decision, Limits, Policy
from agent.sessions import SessionPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchOrder:
    """A switch ready to happen: the new member's session is loaded."""

    classifier: Classifier
    previous: str
    reason: str
    predicted_ms: float
    budget_ms: float
    contention: float
    limit_ms: float
    temperature_c: float | None

    @property
    def target(self) -> str:
        return self.classifier.entry.id


@dataclass
class ControllerStats:
    windows: int = 0
    misses: int = 0
    """Windows whose inference took longer than the budget."""
    switches: int = 0


class Controller:
    def __init__(
        self,
        policy: Policy,
        latency: LatencyModel,
        pool: SessionPool,
        limits: Limits,
        monotonic: Callable[[], float],
        active_id: str,
    ) -> None:
        self.policy = policy
        self.latency = latency
        self.pool = pool
        self.limits = limits
        self._now = monotonic
        self.active_id = active_id
        self.latest: ResourceSnapshot | None = None
        self.stats = ControllerStats()
        self._order: SwitchOrder | None = None
        self._wanted: Decision | None = None
        self._lock = threading.Lock()
        self._cold = True
        """The next observed window is a member's first in the pipeline: several times slower
        than the rest (buffers, caches), so it is not taken as contention."""
        pool.pin(active_id)

    # -- the monitor thread ------------------------------------------------------------------
    def on_snapshot(self, snap: ResourceSnapshot) -> None:
        self.latest = snap
        self.latency.set_load(snap.others_cores)
        self._decide()

    # -- the pipeline thread -----------------------------------------------------------------
    def observe(self, model_id: str, infer_s: float) -> None:
        ms = infer_s * 1000.0
        st = self.stats
        st.windows += 1
        if ms > self.limits.budget_ms:
            st.misses += 1
        if self._cold:  # the first window after a start or a switch: cold, not contention
            self._cold = False
            return
        self.latency.observe(model_id, ms)
        if self.policy.over_budget(self.latency.predict(model_id)):
            self._decide()

    def take(self) -> SwitchOrder | None:
        """The switch to make now, if one is ready (then it counts as made)."""
        if self._order is None:
            return None
        with self._lock:
            order, self._order = self._order, None
            if order is None or order.previous != self.active_id:
                return None
            self.active_id = order.target
            self._wanted = None
            self.stats.switches += 1
            self._cold = True
            # under the lock: a decision the monitor thread prepares right after this (which
            # pins the new member and its own target) cannot be overwritten by a late pin
            self.pool.pin(order.target)
        return order

    # -- commands (the pipeline thread) ---------------------------------------------------------
    def force(self, model_id: str | None) -> None:
        """Pin a member (``None`` releases it). Raises KeyError for a member not in the policy,
        ValueError (with the reason) for one that cannot be loaded: broken, or its file missing
        or altered."""
        if model_id is not None:
            if not self.policy.knows(model_id):
                raise KeyError(model_id)
            problem = self.pool.check(model_id)
            if problem is not None:
                raise ValueError(f"model {model_id!r} cannot be used: {problem}")
        with self._lock:
            # a background load of it may have failed since the check: then _failed ran before
            # the override existed and could not release it; refuse, keeping what was pinned
            broken = self.pool.broken.get(model_id) if model_id is not None else None
            if broken is None:
                self.policy.force(model_id)
                self._order = self._wanted = None  # what was pending no longer applies
        if broken is not None:
            raise ValueError(f"model {model_id!r} cannot be used: {broken}")
        self._decide()

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.policy.mode = mode
            self._order = self._wanted = None
        self._decide()

    def close(self) -> None:
        """At stop: no more background loads, and those in flight are joined (bounded; see
        :meth:`SessionPool.close`)."""
        self.pool.close()

    def status(self) -> dict[str, Any]:
        st = self.stats
        return {
            "mode": self.policy.mode,
            "override": self.policy.override,
            "active": self.active_id,
            "budget_ms": round(self.limits.budget_ms, 4),
            "contention": round(self.latency.bound(), 3),
            "thermal_macs_cap": self.policy.macs_cap,
            "windows": st.windows,
            "deadline_misses": st.misses,
            "switches": st.switches,
            "candidates": [c.id for c in self.policy.candidates],
            "pinnable": self.policy.pinnable,
            "loaded": self.pool.loaded(),
        }

    # -- internals ---------------------------------------------------------------------------
    def _decide(self) -> None:
        with self._lock:
            broken = self.pool.broken
            predicted = {k: v for k, v in self.latency.predict_all().items() if k not in broken}
            decision = self.policy.decide(self._now(), self.active_id, predicted, self.latest)
            if decision is None:
                return
            self._prepare(decision)

    def _loaded(self, model_id: str) -> None:
        with self._lock:
            w = self._wanted
            if w is None or w.target != model_id:
                return
            pol = self.policy
            stale = (pol.override is not None and pol.override != model_id) or (
                pol.override is None and pol.mode == "static"
            )
            if stale:
                self._wanted = None
                return
            self._prepare(w)

    def _failed(self, model_id: str) -> None:
        """A background load failed: the member is broken now; decide again without it (an
        override pinning it is released: it can never be honoured)."""
        with self._lock:
            if self._wanted is not None and self._wanted.target == model_id:
                self._wanted = None
            if self.policy.override == model_id:
                self.policy.force(None)
                log.error("override %s released: its session failed to load", model_id)
        self._decide()

    def _prepare(self, d: Decision) -> None:
        """Turn a decision into a ready order, or start loading its session (lock held)."""
        self._wanted = d
        # looked up and pinned in one pool step: a background load's eviction cannot come
        # between the two (the order's session must stay loaded and counted)
        c = self.pool.get_pinned(d.target, self.active_id)
        if c is None:
            log.info("switch to %s (%s) waits for its session to load", d.target, d.reason)
            self._order = None  # an older ready order is superseded by this decision
            self.pool.pin(self.active_id)  # so its session is no longer kept for it
            self.pool.request(d.target, on_ready=self._loaded, on_failed=self._failed)
            return
        snap = self.latest
        self._order = SwitchOrder(
            classifier=c,
            previous=self.active_id,
            reason=d.reason,
            predicted_ms=d.predicted_ms,
            budget_ms=self.limits.budget_ms,
            limit_ms=d.limit_ms,
            contention=self.latency.bound(),
            temperature_c=snap.temperature_c if snap is not None else None,
        )
