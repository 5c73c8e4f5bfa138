"""Windows at several resolutions of the same 2.56 s span, produced the way the agent does.

The agent serves a resolution-R model by resampling the sensor stream to ``50 * R / 128`` Hz with
:class:`agent.resampling.Resampler` and cutting R-sample windows with hop R/2. Here every
experiment's 50 Hz stream goes through the same resampler (one chunk) and:

- :func:`eval_windows` cuts windows exactly like the agent (``sliding_windows`` from the first
  resampled sample, hop R/2), keeping windows whose samples all carry one activity label;
- :func:`aligned_windows` builds *index-aligned* training sets: for every 50 Hz window start
  (hop ``hop128``) it takes, from each resampled stream, the R samples that start at the same
  time (nearest resampled sample). Row i of every resolution shows the same 2.56 s of motion,
  which in-place distillation needs (the student must see what the teacher saw). A row is kept
  when every resolution's window lies inside the stream and carries one and the same activity;
- :func:`crop_windows` (random temporal crops, ``build --crop-hop``) cuts the same rows at a
  finer hop and groups them by the coarse start they follow, so that training can draw, each
  epoch, one window per coarse row at a random offset (:meth:`CropWindows.draw`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agent.recording import Chunk
from agent.resampling import Resampler
from agent.windowing import sliding_windows, uniform_label
from tools.hapt import ACTIVITIES, RATE_HZ, Experiment

if TYPE_CHECKING:
    import torch

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
    return _aligned(experiments, resolutions, hop128, classes)[0]


def _aligned(
    experiments: Iterable[Experiment],
    resolutions: Sequence[int],
    hop128: int,
    classes: Sequence[str],
) -> tuple[MultiResWindows, np.ndarray]:
    """:func:`aligned_windows` and, per row, (experiment's position in ``experiments``, start
    step i: the window starts at 50 Hz sample ``i * hop128``) as an int64 array [N, 2]."""
    class_id = {c: i for i, c in enumerate(classes)}
    xs: dict[int, list[np.ndarray]] = {r: [] for r in resolutions}
    ys: list[int] = []
    subj: list[int] = []
    starts: list[tuple[int, int]] = []
    for k, exp in enumerate(experiments):
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
                starts.append((k, i))
    n_ch = 6
    windows = MultiResWindows(
        x={
            r: (np.stack(v) if v else np.zeros((0, r, n_ch))).astype(np.float32)
            for r, v in xs.items()
        },
        y=np.asarray(ys, dtype=np.int64),
        subject=np.asarray(subj, dtype=np.int64),
    )
    return windows, np.asarray(starts, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class CropWindows:
    """Training windows cut every ``crop_hop`` samples of the 50 Hz stream, grouped by the
    coarse row (hop ``hop128``, the rows of :func:`aligned_windows`) whose start they follow:
    ``candidates[c]`` holds the fine rows starting at offsets 0, crop_hop, ... < hop128 after
    coarse row c's start that were kept, ``-1`` where a window was not (it left the stream or
    crossed a label change); offset 0 is coarse row c itself, so it is always there. Fine rows
    whose coarse start was not kept are never drawn: an epoch has exactly the coarse rows' count
    of windows, as without crops."""

    fine: MultiResWindows
    candidates: np.ndarray  # int64 [N_coarse, hop128 // crop_hop], kept rows first
    counts: np.ndarray  # int64 [N_coarse], kept candidates per coarse row

    def __len__(self) -> int:
        return int(self.candidates.shape[0])

    def coarse(self) -> MultiResWindows:
        """The coarse rows: equal to ``aligned_windows(..., hop128)``."""
        rows = self.candidates[:, 0]
        f = self.fine
        return MultiResWindows({r: x[rows] for r, x in f.x.items()}, f.y[rows], f.subject[rows])

    def draw(self, gen: torch.Generator) -> torch.Tensor:
        """One fine row per coarse row, uniformly among its kept candidates (one uniform draw
        per coarse row from ``gen``)."""
        import torch

        u = torch.rand(len(self), generator=gen, dtype=torch.float64).numpy()
        pick = np.minimum((u * self.counts).astype(np.int64), self.counts - 1)
        return torch.from_numpy(self.candidates[np.arange(len(self)), pick])


def crop_windows(
    experiments: Sequence[Experiment],
    resolutions: Sequence[int],
    hop128: int = 32,
    crop_hop: int = 8,
    classes: Sequence[str] = ACTIVITIES,
) -> CropWindows:
    """Index-aligned windows every ``crop_hop`` samples, grouped by their coarse (``hop128``)
    row (see :class:`CropWindows`). ``crop_hop`` must divide ``hop128``."""
    if crop_hop < 1 or hop128 % crop_hop:
        raise ValueError(f"crop hop {crop_hop} must divide the training hop {hop128}")
    k = hop128 // crop_hop
    fine, starts = _aligned(experiments, resolutions, crop_hop, classes)
    anchor = starts[:, 1] // k  # the coarse start step each fine row follows
    offset = starts[:, 1] % k
    coarse_rows = np.flatnonzero(offset == 0)
    index = {(int(starts[c, 0]), int(anchor[c])): n for n, c in enumerate(coarse_rows)}
    candidates = np.full((len(coarse_rows), k), -1, dtype=np.int64)
    counts = np.zeros(len(coarse_rows), dtype=np.int64)
    for row in range(len(fine)):  # rows come in order of (experiment, start): offsets ascend
        n = index.get((int(starts[row, 0]), int(anchor[row])))
        if n is not None:
            candidates[n, counts[n]] = row
            counts[n] += 1
    return CropWindows(fine, candidates, counts)


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
