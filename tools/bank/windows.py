"""Windows at several resolutions of the same 2.56 s span, produced the way the agent does.

The agent serves a resolution-R model by resampling the sensor stream to ``50 * R / 128`` Hz with
:class:`agent.windowing.Resampler` and cutting R-sample windows with hop R/2. Here every
experiment's 50 Hz stream goes through the same resampler (one chunk) and:

- :func:`eval_windows` cuts windows exactly like the agent (``sliding_windows`` from the first
  resampled sample, hop R/2), keeping windows whose samples all carry one activity label;
- :func:`aligned_windows` builds *index-aligned* training sets: for every 50 Hz window start
  (hop ``hop128``) it takes, from each resampled stream, the R samples that start at the same
  time (nearest resampled sample). Row i of every resolution shows the same 2.56 s of motion,
  which in-place distillation needs (the student must see what the teacher saw). A row is kept
  when every resolution's window lies inside the stream and carries one and the same activity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.recording import Chunk
from agent.windowing import Resampler, sliding_windows, uniform_label
from tools.hapt import ACTIVITIES, RATE_HZ, Experiment

BASE_LENGTH = 128


def rate_for(resolution: int) -> float:
    """Model sample rate of a resolution-R member: the 2.56 s window holds R samples."""
    return RATE_HZ * resolution / BASE_LENGTH


def resample(exp: Experiment, resolution: int) -> Chunk:
    """The experiment's stream resampled to :func:`rate_for` (labels follow the resampler)."""
    t = np.arange(len(exp), dtype=np.float64) / RATE_HZ
    chunk = Chunk(t, exp.values, tuple(exp.label_names()))
    if resolution == BASE_LENGTH:
        return chunk
    return Resampler(RATE_HZ, rate_for(resolution)).push(chunk)


@dataclass(frozen=True)
class MultiResWindows:
    """``x[R]`` [N, R, C] float32 per resolution, labels ``y`` [N], subject per row."""

    x: dict[int, np.ndarray]
    y: np.ndarray
    subject: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _label_ok(labels: Sequence[str | None], class_id: dict[str, int]) -> int | None:
    lbl = uniform_label(list(labels))
    return class_id.get(lbl) if lbl is not None else None


def aligned_windows(
    experiments: Iterable[Experiment],
    resolutions: Sequence[int],
    hop128: int = 64,
    classes: Sequence[str] = ACTIVITIES,
) -> MultiResWindows:
    """Index-aligned windows at every resolution (see the module docstring)."""
    class_id = {c: i for i, c in enumerate(classes)}
    xs: dict[int, list[np.ndarray]] = {r: [] for r in resolutions}
    ys: list[int] = []
    subj: list[int] = []
    for exp in experiments:
        streams = {r: resample(exp, r) for r in resolutions}
        n_starts = (len(exp) - BASE_LENGTH) // hop128 + 1
        for i in range(max(n_starts, 0)):
            t_start = i * hop128 / RATE_HZ
            label: int | None = None
            picks: dict[int, int] = {}
            for r, ch in streams.items():
                if len(ch) < r:
                    break
                j = int(round((t_start - ch.t[0]) * rate_for(r)))
                if j < 0 or j + r > len(ch):
                    break
                assert ch.labels is not None
                lbl = _label_ok(ch.labels[j : j + r], class_id)
                if lbl is None or (label is not None and lbl != label):
                    break
                label = lbl
                picks[r] = j
            else:
                if label is None:
                    continue
                for r, j in picks.items():
                    xs[r].append(streams[r].values[j : j + r])
                ys.append(label)
                subj.append(exp.subject)
    n_ch = 6
    return MultiResWindows(
        x={
            r: (np.stack(v) if v else np.zeros((0, r, n_ch))).astype(np.float32)
            for r, v in xs.items()
        },
        y=np.asarray(ys, dtype=np.int64),
        subject=np.asarray(subj, dtype=np.int64),
    )


@dataclass(frozen=True)
class ResWindows:
    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray


def eval_windows(
    experiments: Iterable[Experiment], resolution: int, classes: Sequence[str] = ACTIVITIES
) -> ResWindows:
    """Windows of one resolution cut exactly as the agent cuts them (hop R/2)."""
    class_id = {c: i for i, c in enumerate(classes)}
    hop = resolution // 2
    xs: list[np.ndarray] = []
    ys: list[int] = []
    subj: list[int] = []
    for exp in experiments:
        ch = resample(exp, resolution)
        wins = sliding_windows(ch.values.astype(np.float32), resolution, hop)
        assert ch.labels is not None
        for i in range(wins.shape[0]):
            lbl = _label_ok(ch.labels[i * hop : i * hop + resolution], class_id)
            if lbl is not None:
                xs.append(wins[i])
                ys.append(lbl)
                subj.append(exp.subject)
    return ResWindows(
        x=(np.stack(xs) if xs else np.zeros((0, resolution, 6))).astype(np.float32),
        y=np.asarray(ys, dtype=np.int64),
        subject=np.asarray(subj, dtype=np.int64),
    )
