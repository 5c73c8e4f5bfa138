"""Numpy's answers for short lists of Python floats, without numpy's per-call cost.

A prediction carries a handful of class probabilities; for six numbers a numpy call (1-2 us)
costs more than the arithmetic. These helpers give exactly what numpy gives for the same float64
values, so the hot path can switch to Python floats without changing a result.
"""

from __future__ import annotations

import numpy as np


def _ordered(values: list[float]) -> bool:
    """True when Python's ``max`` gives numpy's answer: no NaN (nor inf - inf) in ``values``."""
    total = sum(values)
    return total == total


def first_argmax(values: list[float]) -> int:
    """``int(np.argmax(values))``: the index of the first largest value, or, when a NaN is
    there, of the first NaN (numpy's rule)."""
    if _ordered(values):  # max and index are exact
        return values.index(max(values))
    return int(np.argmax(np.asarray(values, dtype=np.float64)))
