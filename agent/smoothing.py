"""Smoothing of predictions over the last K windows: probability mean or majority vote."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
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

    def reset(self) -> None:
        self._probs.clear()

    def update(self, probs: np.ndarray) -> Smoothed:
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
        avg = np.mean(np.stack(self._probs), axis=0) if len(self._probs) > 1 else probs
        idx = int(np.argmax(avg))
        return Smoothed(idx, float(avg[idx]))
