"""The Python-float helpers give numpy's answers: a table of edge cases and random vectors."""

import math
import random

import numpy as np
import pytest

from agent.floats import first_argmax
from agent.inference import Classifier, NonFiniteOutputs
from agent.manifest import load_manifest
from agent.smoothing import Smoother

from .test_hot_path import MODELS

CASES = [
    [0.1, 0.7, 0.2],
    [0.5, 0.5, 0.0],  # a tie: the first
    [0.0, 0.0, 0.0],
    [-1.0, -0.5, -0.5],
    [1.0],
    [0.2, math.nan, 0.9, math.nan],
    [math.nan, 0.3],
    [math.inf, 0.1, math.inf],
    [-math.inf, -math.inf],
    [math.inf, -math.inf, 0.0],
    [1e308, 1e308, 1.0],  # the sum overflows to inf; no NaN
    [-0.0, 0.0],
]


@pytest.mark.parametrize("values", CASES)
def test_first_argmax_is_numpy_argmax(values: list[float]) -> None:
    assert first_argmax(values) == int(np.argmax(np.asarray(values, dtype=np.float64)))


def test_first_argmax_random() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        v = [rng.choice([0.0, 0.25, 0.5, rng.random()]) for _ in range(rng.randint(1, 12))]
        assert first_argmax(v) == int(np.argmax(v))


class _Logits:
    """An engine that returns given logits."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray([self.rows.pop(0)], dtype=np.float32)


def _reference_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64 numpy (what the classifier's Python-float softmax must equal)."""
    x = logits.astype(np.float64)
    e: np.ndarray = np.exp(x - x.max())
    return e / e.sum()


LOGITS = [
    [0.1, 2.0, -3.0, 0.5, 0.5, 1.9],
    [0.0] * 6,
    [100.0, -100.0, 50.0, 99.99, 0.0, -1e30],
    [math.nan, 1.0, 2.0, 3.0, 4.0, 5.0],
    [1.0, 2.0, math.nan, 3.0, 4.0, 5.0],  # a NaN after the first: Python's max skips it
    [9.0, -math.inf, math.nan, 3.0, math.inf, 5.0],
    [1.0, math.inf, 2.0, 3.0, 4.0, 5.0],
    [1.0, math.inf, math.inf, -math.inf, 4.0, 5.0],
    [-math.inf] * 6,
    [3.4e38, -3.4e38, 3.4e38, 0.0, 1.0, 2.0],
]


def test_classifier_softmax_equals_float64_numpy() -> None:
    """The classifier's softmax in Python floats: numpy's float64 softmax of the float32 logits
    (within 1e-15: ``math.exp`` and numpy's ``exp`` may differ in the last bit), the same NaNs,
    the first largest probability's index, and within float32 rounding of the float32 softmax
    it replaced."""
    entry = load_manifest(MODELS).get("cnn1d-base")
    rng = np.random.default_rng(0)
    rows = LOGITS + [(rng.standard_normal(6) * s).tolist() for s in (0.1, 1, 10, 60) * 50]
    clf = Classifier(entry, _Logits(list(rows)), lambda: 0.0)
    window = np.zeros((entry.input.length, 6), dtype=np.float32)
    for row in rows:
        logits = np.asarray(row, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            ref = _reference_softmax(logits)
            old = np.exp(logits - logits.max())
            old /= old.sum()
            if np.isnan(ref).any():  # no prediction from NaN probabilities: the window is rejected
                assert np.isnan(ref).all(), row
                with pytest.raises(NonFiniteOutputs):
                    clf.classify(window)
                continue
            c = clf.classify(window)
        assert isinstance(c.values, list) and all(type(v) is float for v in c.values)
        assert np.allclose(c.values, ref, rtol=1e-15, atol=1e-300, equal_nan=True), row
        assert np.array_equal(np.isnan(c.probs), np.isnan(ref)), row
        assert np.allclose(c.probs, old, rtol=0, atol=1e-6, equal_nan=True), row
        assert c.index == int(ref.argmax()), row


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_python_float_smoother_equals_numpy_running_mean(k: int) -> None:
    """The mean smoother's running sum over Python floats: the same float64 operations, in
    the same order, as the numpy version it replaced (subtract the oldest, add the newest)."""
    rng = np.random.default_rng(10 + k)
    s = Smoother("mean", k)
    window: list[np.ndarray] = []
    total: np.ndarray | None = None
    vectors = [rng.dirichlet(np.ones(6)).astype(np.float32) for _ in range(400)]
    vectors[50] = np.array([0.5, 0.5, 0, 0, 0, 0], dtype=np.float32)  # ties
    vectors[51] = np.array([1, 0, 0, 0, 0, 0], dtype=np.float32)
    for p in vectors:
        q = p.astype(np.float64)
        if total is None:
            total = q.copy()
        else:
            if len(window) == k:
                total -= window.pop(0)
            total += q
        window.append(q)
        avg = total / len(window)
        got = s.update_values(p.tolist())
        assert got.index == int(avg.argmax())
        assert got.confidence == float(avg[got.index])
        assert type(got.confidence) is float


def test_vote_smoother_on_python_floats_equals_arrays() -> None:
    rng = np.random.default_rng(4)
    a, b = Smoother("vote", 4), Smoother("vote", 4)
    for _ in range(300):
        p = rng.dirichlet(np.ones(5) * 0.3).astype(np.float32)
        ra, rb = a.update(p), b.update_values(p.tolist())
        assert (ra.index, ra.confidence) == (rb.index, rb.confidence)
