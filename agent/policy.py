"""The switching policy: which bank member to run now. Pure logic, no clocks, threads or I/O.

Rule (docs/adaptive.md): run the most accurate candidate whose predicted latency fits the
per-window budget, under an optional CPU-share cap and energy cap.

- The running member steps **down** at once when its predicted latency exceeds
  ``headroom_down`` x budget (or a cap): a missed deadline is not worth waiting for.
- It steps **up** only to a member predicted to use at most ``headroom_up`` x budget, and only
  ``dwell_s`` after the last switch: the gap between the two headrooms is the hysteresis, the
  dwell stops flapping.
- A thermal guard: while the board is at or above ``thermal_c`` or the firmware reports
  throttling, the MACs allowed are halved (again each dwell while it stays hot); the cap is lifted
  once the temperature is back under ``thermal_release_c`` and the throttling has stopped.
- A manual override pins one member until released; ``static`` mode never switches by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.monitor import ResourceSnapshot


@dataclass(frozen=True)
class Candidate:
    id: str
    accuracy: float
    macs: int


@dataclass(frozen=True)
class Limits:
    """What a window may cost. Zero or ``None`` means no limit of that kind."""

    budget_ms: float
    hop_ms: float
    cpu_share: float = 0.0
    energy_mj: float = 0.0
    core_w: float = 0.0
    """Power per busy core (W), to turn predicted milliseconds into millijoules."""


@dataclass(frozen=True)
class PolicyTuning:
    headroom_up: float = 0.7
    headroom_down: float = 0.9
    dwell_s: float = 10.0
    thermal_c: float = 80.0
    thermal_release_c: float = 70.0


@dataclass(frozen=True)
class Decision:
    target: str
    reason: str
    """Which rule fired: ``deadline``, ``cpu-share``, ``energy``, ``thermal``, ``headroom``,
    ``override`` or ``candidates``."""
    predicted_ms: float
    limit_ms: float = 0.0
    """The tightest of the limits in force when it was decided, in ms per window: the deadline
    budget, the CPU-share cap or the energy cap (``energy_mj / core_w``)."""


class Policy:
    """Holds the policy's state (last switch time, thermal cap, override, mode)."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        limits: Limits,
        tuning: PolicyTuning | None = None,
        *,
        mode: str = "adaptive",
        pinnable: Sequence[Candidate] = (),
    ) -> None:
        """``candidates`` are what the policy chooses among; ``pinnable`` are further members
        that only the override (``force``) may pin, e.g. those off the accuracy/latency front."""
        if not candidates:
            raise ValueError("the policy needs at least one candidate")
        # best first: accuracy, then fewer MACs
        self.candidates = sorted(candidates, key=lambda c: (-c.accuracy, c.macs, c.id))
        self._by_id = {c.id: c for c in self.candidates}
        self._pinnable = {c.id: c for c in (*self.candidates, *pinnable)}
        self.limits = limits
        self.tuning = tuning or PolicyTuning()
        self.mode = mode
        self.override: str | None = None
        self.macs_cap: int | None = None
        """Set by the thermal guard; ``None`` when the board is cool."""
        self.last_switch = float("-inf")
        self._last_thermal_step = float("-inf")
        self._thermal_snap: ResourceSnapshot | None = None

    def knows(self, model_id: str) -> bool:
        """Whether the override may pin ``model_id`` (a candidate or a pinnable member)."""
        return model_id in self._pinnable

    @property
    def pinnable(self) -> list[str]:
        """Every member the override may pin: the candidates, then the others, by id."""
        extra = sorted(i for i in self._pinnable if i not in self._by_id)
        return [c.id for c in self.candidates] + extra

    def _ceiling(self, share: float) -> float:
        """Largest predicted latency (ms) allowed at ``share`` of every limit."""
        lim = self.limits
        ceiling = share * lim.budget_ms
        if lim.cpu_share > 0:
            ceiling = min(ceiling, share * lim.cpu_share * lim.hop_ms)
        if lim.energy_mj > 0 and lim.core_w > 0:
            ceiling = min(ceiling, share * lim.energy_mj / lim.core_w)  # mJ / W = ms
        return ceiling

    def _binding(self) -> str:
        """Name of the limit that sets the ceiling (for the switch reason)."""
        lim = self.limits
        reasons = [("deadline", lim.budget_ms)]
        if lim.cpu_share > 0:
            reasons.append(("cpu-share", lim.cpu_share * lim.hop_ms))
        if lim.energy_mj > 0 and lim.core_w > 0:
            reasons.append(("energy", lim.energy_mj / lim.core_w))
        return min(reasons, key=lambda r: r[1])[0]

    def _allowed(self, c: Candidate) -> bool:
        return self.macs_cap is None or c.macs <= self.macs_cap

    def _best_fitting(self, predicted: Mapping[str, float], ceiling: float) -> Candidate | None:
        for c in self.candidates:
            if self._allowed(c) and c.id in predicted and predicted[c.id] <= ceiling:
                return c
        return None

    def _fastest(self, predicted: Mapping[str, float]) -> Candidate:
        pool = [c for c in self.candidates if self._allowed(c) and c.id in predicted]
        if not pool:
            pool = [min(self.candidates, key=lambda c: c.macs)]
        return min(pool, key=lambda c: (predicted.get(c.id, float("inf")), c.macs))

    def _thermal(self, now: float, snap: ResourceSnapshot | None, active: Candidate) -> bool:
        """Update the thermal cap; True when it was just lowered."""
        if snap is None or snap is self._thermal_snap:
            return False  # one thermal step per snapshot (decide runs per window too)
        self._thermal_snap = snap
        t = self.tuning
        temp = snap.temperature_c
        throttled = snap.throttling is not None and snap.throttling.hot
        hot = throttled or (temp is not None and temp >= t.thermal_c)
        if hot:
            if self.macs_cap is None or now - self._last_thermal_step >= t.dwell_s:
                floor = min(c.macs for c in self.candidates)
                start = active.macs if self.macs_cap is None else min(self.macs_cap, active.macs)
                self.macs_cap = max(floor, start // 2)
                self._last_thermal_step = now
                return True
            return False
        cool = not throttled and (temp is None or temp < t.thermal_release_c)
        if cool and self.macs_cap is not None:
            self.macs_cap = None
        return False

    def decide(
        self,
        now: float,
        active_id: str,
        predicted: Mapping[str, float],
        snapshot: ResourceSnapshot | None = None,
    ) -> Decision | None:
        """The member to switch to now, or ``None`` to keep ``active_id``."""
        active = self._by_id.get(active_id)
        if self.override is not None:
            if self.override != active_id:
                return Decision(
                    self.override,
                    "override",
                    predicted.get(self.override, 0.0),
                    self._ceiling(1.0),
                )
            return None
        if self.mode == "static":
            return None
        t = self.tuning
        if active is None:  # running a member outside the candidates: move into them
            c = self._best_fitting(predicted, self._ceiling(t.headroom_up)) or self._fastest(
                predicted
            )
            return self._switch(now, c, "candidates", predicted) if c.id in predicted else None
        self._thermal(now, snapshot, active)
        if not self._allowed(active):
            c = self._best_fitting(predicted, self._ceiling(t.headroom_up)) or self._fastest(
                predicted
            )
            if c.id == active_id or c.id not in predicted:
                return None
            return self._switch(now, c, "thermal", predicted)
        now_ms = predicted.get(active_id)
        if now_ms is not None and now_ms > self._ceiling(t.headroom_down):
            c = self._best_fitting(predicted, self._ceiling(t.headroom_up)) or self._fastest(
                predicted
            )
            if c.id != active_id and predicted.get(c.id, float("inf")) < now_ms:
                return self._switch(now, c, self._binding(), predicted)
            return None
        if now - self.last_switch < t.dwell_s:
            return None
        best = self._best_fitting(predicted, self._ceiling(t.headroom_up))
        if best is not None and best.accuracy > active.accuracy:
            return self._switch(now, best, "headroom", predicted)
        return None

    def _switch(
        self, now: float, c: Candidate, reason: str, predicted: Mapping[str, float]
    ) -> Decision:
        self.last_switch = now
        return Decision(c.id, reason, predicted.get(c.id, 0.0), self._ceiling(1.0))

    def over_budget(self, active_ms: float) -> bool:
        """The running member's predicted latency calls for an immediate step-down check."""
        return active_ms > self._ceiling(self.tuning.headroom_down)

    def initial(self, predicted: Mapping[str, float]) -> Candidate:
        """The member to start with: the best that fits with headroom, else the fastest."""
        if self.override is not None:
            return self._pinnable[self.override]
        return self._best_fitting(predicted, self._ceiling(self.tuning.headroom_up)) or (
            self._fastest(predicted)
        )

    def force(self, model_id: str | None) -> None:
        """Pin ``model_id`` (``None`` releases the pin)."""
        if model_id is not None and model_id not in self._pinnable:
            raise KeyError(model_id)
        self.override = model_id
