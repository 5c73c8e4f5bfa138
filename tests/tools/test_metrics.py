"""Weighted F1 and friends against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tools import metrics


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n", "expected"),
    [
        ([0, 1, 2], [0, 1, 2], 3, 1.0),  # perfect
        ([0, 0, 1, 1], [1, 1, 0, 0], 2, 0.0),  # all wrong
        # class 0: P=1, R=0.5, F1=2/3 (support 2); class 1: P=0.5, R=1, F1=2/3 (support 1)
        ([0, 0, 1], [0, 1, 1], 2, 2 / 3),
        # unequal support: class 0 F1 = 0.8 (P 1, R 2/3, support 3), class 1 F1 = 2/3 (support 1)
        ([0, 0, 0, 1], [0, 0, 1, 1], 2, (3 * 0.8 + 1 * 2 / 3) / 4),
        # a class never predicted: its F1 is 0 (precision 0/0 counts as 0)
        ([0, 1, 1, 1], [1, 1, 1, 1], 2, (1 * 0 + 3 * (2 * 0.75 * 1 / 1.75)) / 4),
        # a class present in n_classes but absent from y_true has no weight
        ([0, 0, 1, 1], [0, 0, 1, 2], 3, (2 * 1.0 + 2 * (2 / 3)) / 4),
        ([], [], 3, 0.0),
    ],
)
def test_f1_weighted(y_true: list[int], y_pred: list[int], n: int, expected: float) -> None:
    got = metrics.f1_weighted(np.array(y_true, dtype=int), np.array(y_pred, dtype=int), n)
    assert got == pytest.approx(expected)


def test_f1_weighted_matches_a_reference_loop() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, 500)
    p = np.where(rng.random(500) < 0.7, t, rng.integers(0, 6, 500))
    total = 0.0
    for c in range(6):
        tp = np.sum((p == c) & (t == c))
        prec = tp / max(np.sum(p == c), 1)
        rec = tp / max(np.sum(t == c), 1)
        f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        total += f1 * np.sum(t == c)
    assert metrics.f1_weighted(t, p, 6) == pytest.approx(total / len(t))


def test_confusion_accuracy_recall() -> None:
    t = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 2, 0])
    cm = metrics.confusion_matrix(t, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert metrics.accuracy(t, p) == pytest.approx(4 / 6)
    assert metrics.per_class_recall(t, p, 3) == pytest.approx([0.5, 1.0, 2 / 3])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n"),
    [([0, 1], [0], 2), ([0, 3], [0, 1], 3), ([0, -1], [0, 1], 2)],
)
def test_bad_inputs_are_rejected(y_true: list[int], y_pred: list[int], n: int) -> None:
    with pytest.raises(ValueError):
        metrics.f1_weighted(np.array(y_true), np.array(y_pred), n)
