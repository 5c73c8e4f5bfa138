"""What one run of the pipeline did: counters, and per-chunk timings for benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunStats:
    """What one run did. The per-chunk and per-window lists are filled only when the pipeline
    records timings (benchmarks): a daemon that runs for months keeps counters alone."""

    windows: int = 0
    labelled: int = 0
    correct: int = 0
    samples: int = 0
    rejected: int = 0
    """Windows not classified because they held NaN, Inf or saturated samples."""
    saturated: int = 0
    """Of those, windows rejected for saturated samples."""
    read_s: list[float] = field(default_factory=list)
    process_s: list[float] = field(default_factory=list)
    infer_s: list[float] = field(default_factory=list)
    windows_per_chunk: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    predictions: list[int] = field(default_factory=list)
    windows_data: list[np.ndarray] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    """Bank member that classified each window (with ``record_timings``)."""
    switches: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None
