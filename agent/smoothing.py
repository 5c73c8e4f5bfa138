"""Smoothing of predictions over the last K windows: probability mean or majority vote."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Smoothed:
    index: int
    confidence: float


class Smoother:
    """``mean``: average the last ``k`` probability vectors; ``vote``: the label most of the last
    ``k`` windows chose (ties go to the most recent of the tied labels), confidence = its share.
    ``none`` passes each window's own prediction through.
    """

    def __init__(self, method: str, k: int) -> None:
        if method not in ("none", "mean", "vote"):
            raise ValueError(f"unknown smoothing method {method!r}")
        if k < 1:
            raise ValueError("smoothing window must be at least 1")
        self.method = method
        self.k = k if method != "none" else 1
        self._probs: deque[np.ndarray] = deque(maxlen=self.k)
        self._sum: np.ndarray | None = None

    def reset(self) -> None:
        self._probs.clear()
        self._sum = None

    def update(self, probs: np.ndarray) -> Smoothed:
        probs = np.asarray(probs, dtype=np.float64)
        if self.method == "mean":
            total = self._sum
            if total is None:
                self._sum = probs.copy()
            else:
                if len(self._probs) == self.k:
                    total -= self._probs[0]
                total += probs
        self._probs.append(probs)
        if self.method == "vote":
            votes = [int(np.argmax(p)) for p in self._probs]
            counts: dict[int, int] = {}
            for v in votes:
                counts[v] = counts.get(v, 0) + 1
            best = max(counts.values())
            tied = {c for c, n in counts.items() if n == best}
            winner = next(v for v in reversed(votes) if v in tied)
            return Smoothed(winner, best / len(votes))
        avg = probs if self._sum is None else self._sum / len(self._probs)
        idx = int(avg.argmax())
        return Smoothed(idx, avg.item(idx))
