"""Evaluate an ONNX bank member on windows, and describe it as a manifest entry.

The test metrics are computed exactly as for the width-resolution members
(:func:`tools.bank.members.build_member`): the member's own resolution-R windows of the test
subjects cut as the agent cuts them (:func:`tools.bank.windows.eval_windows`), normalised with
the manifest's normalisation, one ONNX Runtime ``session.run`` per window, accuracy, weighted F1
and per-class recall from :mod:`tools.metrics`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from agent.manifest import InputSpec, ModelEntry, sha256_file
from agent.windowing import Normalizer
from tools import metrics
from tools.bank.windows import ResWindows
from tools.export import board_name, ort_logits
from tools.hapt import ACTIVITIES


def model_input(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Normalised windows [N, T, C] laid out as the model takes them (batch kept first)."""
    if spec.layout == "NTC":
        return x
    if spec.layout == "NCT":
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    if spec.layout == "N1TC":
        return x[:, None]
    raise ValueError(f"unknown layout {spec.layout!r}")


def predict(sess: onnxruntime.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Class ids for model-layout inputs ``x`` (one ``session.run`` per window)."""
    return ort_logits(sess, x).argmax(1) if len(x) else np.zeros(0, np.int64)


def member_metrics(
    sess: onnxruntime.InferenceSession, test: ResWindows, norm: Normalizer, spec: InputSpec
) -> dict[str, Any]:
    """The manifest's test metrics block for one member."""
    pred = predict(sess, model_input(norm(test.x), spec))
    n = len(ACTIVITIES)
    return {
        "accuracy": round(metrics.accuracy(test.y, pred), 6),
        "f1_weighted": round(metrics.f1_weighted(test.y, pred, n), 6),
        "test_windows": len(test.y),
        "test_subjects": sorted(set(test.subject.tolist())),
        "per_class_recall": {
            c: round(float(r), 6)
            for c, r in zip(ACTIVITIES, metrics.per_class_recall(test.y, pred, n), strict=True)
        },
        "evaluated_with": "onnxruntime",
    }


def accuracy_on(
    sess: onnxruntime.InferenceSession, win: ResWindows, norm: Normalizer, spec: InputSpec
) -> float:
    return round(metrics.accuracy(win.y, predict(sess, model_input(norm(win.x), spec))), 6)


def latency_block(lat: dict[str, float], **extra: Any) -> dict[str, Any]:
    """The manifest's ``latency_ms`` block (same keys as the width-resolution members)."""
    return {
        "p50": lat["p50"],
        "p90": lat["p90"],
        "runs": lat["runs"],
        "board": board_name(),
        "threads": 1,
        "onnxruntime": onnxruntime.__version__,
        **extra,
    }


def derived_entry(
    parent: ModelEntry,
    new_id: str,
    path: Path,
    family: str,
    **changes: Any,
) -> ModelEntry:
    """An entry for a model derived from ``parent`` (same input, labels, normalisation),
    with file facts recomputed from ``path`` and the given fields replaced."""
    return dataclasses.replace(
        parent,
        id=new_id,
        file=path.name,
        sha256=sha256_file(path),
        family=family,
        file_bytes=path.stat().st_size,
        **changes,
    )
