"""The rule every sample of a recording keeps, in one place: the readers
(:mod:`agent.recording`, both bodies) refuse a block that breaks it and the writer
(:mod:`agent.recording_writer`) refuses to write one, so a file the writer made is one its reader
takes.

A sample's time and values are finite, its values within float32's range (a recording holds
them as float32, the agent computes with float32: a larger number would be read as Inf), and
its time is after the one before it, the last sample of the previous block included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

NOT_FINITE = "value is not finite (NaN, Inf, or beyond float32's range)"
TIME_NOT_FINITE = "time is not finite (NaN or Inf)"


def as_stored(values: np.ndarray) -> np.ndarray:
    """``values`` as a recording holds them: float32, a number beyond its range becoming Inf
    (which :func:`first_bad_sample` then refuses) rather than a warning."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32)


@dataclass(frozen=True)
class BadSample:
    """The first sample of a block that breaks the rule: its index in the block (from 0),
    which part of the rule (``finite`` or ``increasing``) and the readers' words for it."""

    index: int
    rule: Literal["finite", "increasing"]
    reason: str


def first_bad_sample(
    t: np.ndarray, values: np.ndarray, after: float = -math.inf
) -> BadSample | None:
    """The first sample of the block ``t`` [n] (float64), ``values`` [n, channels] (float32,
    :func:`as_stored`) that breaks the rule, or None. ``after``: the time of the last sample
    before the block (``-inf``: none). Non-finite values are looked for in the whole block
    before the times; each test runs on the whole block at once (numpy), rows are searched only
    when one fails. The tests are phrased so that a NaN fails them (``NaN <= x`` is false too)."""
    finite_t = np.isfinite(t)
    if not (finite_t.all() and np.isfinite(values).all()):
        bad = int(np.argmin(np.isfinite(values).all(axis=1) & finite_t))
        return BadSample(bad, "finite", NOT_FINITE if finite_t[bad] else TIME_NOT_FINITE)
    increases = np.diff(t, prepend=after) > 0
    if not increases.all():
        bad = int(np.argmin(increases))
        return BadSample(bad, "increasing", f"time {t[bad]} does not increase")
    return None
