"""The inputs ``har-agent bench`` feeds a model: random windows, or a recording's windows cut and
normalised as the agent cuts them for that model (channels by name and unit, resampled to the
model's rate, windowed with its length and hop, normalised with the manifest's statistics)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import DataError
from agent.fronts import channel_indices
from agent.inference import to_model_input
from agent.manifest import ModelEntry
from agent.recording import Chunk, RecordingReader
from agent.recording_header import RecordingHeader
from agent.resampling import Resampler
from agent.windowing import Windower

RANDOM_POOL = 16
"""Distinct random inputs cycled through the loop."""


@dataclass
class Inputs:
    arrays: list[np.ndarray]
    labels: list[str | None]
    """Per input: the window's label as the agent computes it (None: random or mixed)."""
    kind: str


def random_inputs(shape: tuple[int, ...], seed: int = 0, n: int = RANDOM_POOL) -> Inputs:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    return Inputs(arrays, [None] * n, "random")


def read_chunks(path: Path, size: int = 256) -> tuple[RecordingHeader, list[Chunk]]:
    """A recording in memory, as the chunks a replay would hand the pipeline."""
    reader = RecordingReader(path)
    return reader.header, list(reader.chunks(size))


def recording_inputs(
    header: RecordingHeader, chunks: Sequence[Chunk], entry: ModelEntry, where: str
) -> Inputs:
    """The model inputs the agent would feed ``entry`` from this recording, with their labels."""
    spec = entry.input
    cols = channel_indices(header, spec.channels, spec.units, where)
    rate = header.sample_rate_hz
    resampler = Resampler(rate, spec.rate_hz) if abs(rate - spec.rate_hz) > 1e-9 else None
    windower = Windower(spec.window, len(spec.channels))
    arrays: list[np.ndarray] = []
    labels: list[str | None] = []
    for chunk in chunks:
        part = Chunk(chunk.t, chunk.values[:, cols], chunk.labels)
        if resampler is not None:
            part = resampler.push(part)
        for w in windower.push(part):
            if not np.isfinite(w.data).all():  # the agent does not classify these either
                continue
            arrays.append(to_model_input(entry.normalization(w.data), spec.layout))
            labels.append(w.label)
    if not arrays:
        raise DataError(f"{where} is too short for one {spec.length}-sample window of {entry.id}")
    return Inputs(arrays, labels, f"recording {where}")
