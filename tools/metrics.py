"""Classification metrics in plain numpy (the papers report accuracy and weighted F1)."""

from __future__ import annotations

import numpy as np


def _check(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"{name} holds a class outside 0..{n_classes - 1}")
    return t, p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts; rows are the true class, columns the prediction."""
    t, p = _check(y_true, y_pred, n_classes)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    return float(np.mean(t == p)) if t.size else 0.0


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall per class (0 for a class without true samples)."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    return _safe_div(np.diag(cm), cm.sum(axis=1))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 per class; an undefined precision or recall (0/0) counts as 0, like sklearn's default."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(cm)
    precision = _safe_div(tp, cm.sum(axis=0))
    recall = _safe_div(tp, cm.sum(axis=1))
    return _safe_div(2 * precision * recall, precision + recall)


def f1_weighted(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean of per-class F1 weighted by each class's number of true samples."""
    t, _ = _check(y_true, y_pred, n_classes)
    if t.size == 0:
        return 0.0
    support = np.bincount(t, minlength=n_classes).astype(np.float64)
    return float(np.sum(per_class_f1(y_true, y_pred, n_classes) * support) / support.sum())
