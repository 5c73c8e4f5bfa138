"""Smoothing of predictions over the last K windows: probability mean or majority vote.

The probabilities are kept as Python floats: for a handful of classes, plain float arithmetic
is cheaper than numpy calls and gives the same float64 results (every step is one IEEE
operation in the same order: the running sum drops the oldest vector, then adds the newest).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from operator import add, sub

import numpy as np

from agent.floats import first_argmax


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
        self._probs: deque[list[float]] = deque(maxlen=self.k)
        self._votes: deque[int] = deque(maxlen=self.k)
        self._sum: list[float] | None = None

    def reset(self) -> None:
        self._probs.clear()
        self._votes.clear()
        self._sum = None

    def update(self, probs: Sequence[float] | np.ndarray) -> Smoothed:
        """Add one window's probabilities (any numbers; taken as float64)."""
        return self.update_values(np.asarray(probs, dtype=np.float64).tolist())

    def update_values(self, values: list[float]) -> Smoothed:
        """:meth:`update` for a list of Python floats (the pipeline's call); the list is kept,
        so the caller must not change it afterwards. The values must be finite: the mean keeps
        a running sum, which a NaN would never leave (the classifier raises
        :class:`~agent.inference.NonFiniteOutputs` instead of returning one)."""
        if self.method == "vote":
            votes = self._votes
            votes.append(first_argmax(values))
            counts: dict[int, int] = {}
            for v in votes:
                counts[v] = counts.get(v, 0) + 1
            best = max(counts.values())
            tied = {c for c, n in counts.items() if n == best}
            winner = next(v for v in reversed(votes) if v in tied)
            return Smoothed(winner, best / len(votes))
        window = self._probs
        total = self._sum
        if total is None:
            total = self._sum = list(values)
        elif len(values) != len(total):
            raise ValueError(f"{len(values)} probabilities after {len(total)}")
        elif len(window) == self.k:
            # (s - o) + x for each class, as numpy did; map over C functions, not a Python
            # loop (a comprehension over three zipped lists cost twice as much)
            total = self._sum = list(map(add, map(sub, total, window[0]), values))
        else:
            total = self._sum = list(map(add, total, values))
        window.append(values)
        # the largest sum is the largest mean (n > 0): only its mean is computed; the values
        # are finite, so Python's max and index give numpy's first argmax
        idx = total.index(max(total))
        return Smoothed(idx, total[idx] / len(window))
