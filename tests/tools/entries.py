"""A manifest entry for a test model file: the one shape every tools/ test bank uses (128
samples at 50 Hz, the dataset's channels and classes, placeholder figures)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent.manifest import InputSpec, ModelEntry, sha256_file
from agent.windowing import Normalizer
from tools.hapt import ACTIVITIES, CHANNELS, UNITS

NORM = Normalizer((0.8, 0.0, 0.1, 0.0, 0.0, 0.0), (0.4, 0.4, 0.4, 0.4, 0.4, 0.3))


def model_entry(
    path: Path, mid: str, family: str = "width-resolution", **changes: Any
) -> ModelEntry:
    """The entry of the ONNX file at ``path`` (its real sha256 and size), with ``changes``."""
    base = ModelEntry(
        id=mid,
        file=path.name,
        sha256=sha256_file(path),
        family=family,
        input=InputSpec("imu", "NTC", 128, 50.0, 64, CHANNELS, UNITS),
        labels=ACTIVITIES,
        normalization=NORM,
        width=1.0,
        resolution=128,
        macs=1,
        params=1,
        file_bytes=path.stat().st_size,
        metrics={"accuracy": 0.5, "f1_weighted": 0.5},
        latency_ms={"p50": 0.1},
    )
    return dataclasses.replace(base, **changes)
