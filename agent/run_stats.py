"""What one run of the pipeline did: counters, and per-chunk timings for benchmarks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from agent.manifest import ModelEntry

log = logging.getLogger("agent.pipeline")

MAX_UNSCORED_LABELS = 64
"""Distinct labels outside the model's classes counted apart per run (a CSV can name any)."""


@dataclass
class RunStats:
    """What one run did. The per-chunk and per-window lists are filled only when the pipeline
    records timings (benchmarks): a daemon that runs for months keeps counters alone."""

    windows: int = 0
    labelled: int = 0
    """Windows whose label is one of the model's classes (the ones scored)."""
    correct: int = 0
    unscored: dict[str, int] = field(default_factory=dict)
    """Windows whose label is not one of the model's classes (e.g. HAPT's transitions), by
    label: not scored, neither right nor wrong."""
    unscored_more: int = 0
    """Such windows of labels past the first ``MAX_UNSCORED_LABELS`` distinct ones."""
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
    def unscored_windows(self) -> int:
        return sum(self.unscored.values()) + self.unscored_more

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def score(self, label: str, entry: ModelEntry, index: int) -> None:
        """Score one window whose recording labels it ``label`` against the model's answer;
        a label the model cannot predict is counted apart, and said once."""
        labels = entry.labels
        if label in labels:
            self.labelled += 1
            self.correct += labels[index] == label
            return
        unscored = self.unscored
        count = unscored.get(label)
        if count is None:
            if len(unscored) >= MAX_UNSCORED_LABELS:
                self.unscored_more += 1  # counted still, not by label
                return
            if not unscored:  # once a run: a recording may hold several (HAPT: six transitions)
                log.info(
                    "windows labelled %r (or any other label outside %s's classes) are not scored",
                    label,
                    entry.id,
                )
            count = 0
        unscored[label] = count + 1
