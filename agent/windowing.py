"""Windowing and normalisation, shared by training (tools/) and serving (agent/).

Pure logic: numpy arrays and plain values in, numpy arrays out. Training cuts windows with
:func:`sliding_windows`; the agent streams samples through
:class:`~agent.resampling.Resampler` (only when the source rate differs from the model's) and
:class:`Windower`, and both paths produce identical windows for the same samples
(tests/agent/test_windowing.py checks this).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.errors import DataError
from agent.recording import Chunk

GAP_FACTOR = 1.5
"""Two samples further apart than ``GAP_FACTOR / rate`` seconds are a gap in the stream."""


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop in samples at ``rate_hz``."""

    length: int
    hop: int
    rate_hz: float

    def __post_init__(self) -> None:
        if self.length <= 0 or self.hop <= 0:
            raise DataError(f"window length and hop must be positive, got {self.length}/{self.hop}")
        if not self.rate_hz > 0:
            raise DataError(f"window rate must be positive, got {self.rate_hz}")

    @property
    def duration_s(self) -> float:
        return self.length / self.rate_hz

    @property
    def hop_s(self) -> float:
        return self.hop / self.rate_hz


@dataclass(slots=True)
class Window:
    """One window of samples: [length, channels] float32, with its time span and label.

    Treat it as immutable (a plain slotted class: the hot path makes one per window)."""

    index: int
    start_t: float
    end_t: float
    data: np.ndarray
    label: str | None = None
    finite: bool = False
    """Every sample came from a chunk whose producer checked it finite (no NaN/Inf check
    needed); False: unknown."""


def uniform_label(labels: Sequence[str | None] | None) -> str | None:
    """The label every sample carries, or None when they differ or any is unlabelled."""
    if not labels:
        return None
    first = labels[0]
    if first is None or labels.count(first) != len(labels):
        return None
    return first


def sliding_windows(values: np.ndarray, length: int, hop: int) -> np.ndarray:
    """All full windows of ``values`` [n, channels] as a [N, length, channels] array (a copy)."""
    if values.ndim != 2:
        raise DataError(f"expected a [samples, channels] array, got shape {values.shape}")
    n = values.shape[0]
    if n < length:
        return np.zeros((0, length, values.shape[1]), dtype=values.dtype)
    count = (n - length) // hop + 1
    view = np.lib.stride_tricks.sliding_window_view(values, length, axis=0)[::hop][:count]
    return np.ascontiguousarray(view.transpose(0, 2, 1))


class Windower:
    """Cut a stream of chunks into sliding windows; a gap in time restarts the window.

    Windows never span a gap: samples before the gap that do not fill a window are dropped and
    counted in :attr:`dropped_samples`.

    Samples are held in preallocated buffers: positions ``[_a, _b)`` are held, windows are cut
    from ``_a`` onwards, and the held samples move back to the front only when the buffer is full
    (once every few thousand samples, not once per window). Labels are held as runs (the buffer
    position where each run of one label starts, and its label), so a window's label is found
    without looking at its samples' labels one by one.

    With ``copy`` off, a window's ``data`` is a view of the buffer rather than a copy of it,
    valid until the next :meth:`push` (the pipeline classifies every window before it pushes
    the next chunk; whoever keeps a window longer copies it).
    """

    def __init__(
        self, spec: WindowSpec, n_channels: int, first_index: int = 0, *, copy: bool = True
    ) -> None:
        self.spec = spec
        self.n_channels = n_channels
        self._copy = copy
        cap = spec.length + 4096
        self._t = np.zeros(cap, dtype=np.float64)
        self._v = np.zeros((cap, n_channels), dtype=np.float32)
        self._run_at: list[int] = []
        """Buffer positions where the runs of one label start, ascending; the last run goes on
        to ``_b``. Empty when nothing is held."""
        self._run_label: list[str | None] = []
        """The label of each run (None: unlabelled samples)."""
        self._a = 0
        self._b = 0
        self._last_t = 0.0
        """Time of the newest sample held (buffer position ``_b - 1``), when ``_b > _a``."""
        self._unknown_end = 0
        """Buffer position just past the last sample not known to be finite (0: none held)."""
        self._max_dt = GAP_FACTOR / spec.rate_hz
        self._count = first_index
        self.gaps = 0
        self.dropped_samples = 0

    def _restart(self) -> None:
        self.dropped_samples += max(self._b - self._a, 0)
        self._a = self._b = self._unknown_end = 0
        self._run_at.clear()
        self._run_label.clear()

    def push(self, chunk: Chunk) -> list[Window]:
        """Add samples; return the windows they complete, oldest first."""
        v = chunk.values
        if v.ndim != 2 or v.shape[1] != self.n_channels:
            raise DataError(f"expected {self.n_channels} channels per sample, got shape {v.shape}")
        t = chunk.t
        n = t.shape[0]
        if n == 0:
            return []
        max_dt = self._max_dt
        # the common case: no gap inside the chunk nor at the join with what we hold
        # (written so that a NaN time also takes the careful path below); a chunk whose
        # producer bounds its steps below the limit needs no search
        bound = chunk.max_step
        inside = (
            n > 1
            and not (bound is not None and bound <= max_dt)
            and not (t[1:] - t[:-1]).max() <= max_dt
        )
        # (the join with what we hold: Python floats, not numpy scalars, on the per-chunk path)
        if not inside and not (self._b > self._a and t.item(0) - self._last_t > max_dt):
            return self._append(t, v, chunk.labels, chunk.finite)
        out: list[Window] = []
        # split the chunk where the stream has gaps (including the join with what we hold)
        breaks = [int(b) for b in np.nonzero(np.diff(t) > max_dt)[0] + 1]
        if self._b > self._a and t.item(0) - self._last_t > max_dt:
            breaks.insert(0, 0)
        bounds = [0, *breaks, n]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if a > 0 or (a == 0 and breaks and breaks[0] == 0):
                if self._b > self._a:
                    self.gaps += 1
                self._restart()
            labels = chunk.labels[a:b] if chunk.labels is not None else None
            out.extend(self._append(t[a:b], v[a:b], labels, chunk.finite))
        return out

    def _append(
        self,
        t: np.ndarray,
        v: np.ndarray,
        labels: Sequence[str | None] | None,
        finite: bool = False,
    ) -> list[Window]:
        out: list[Window] = []
        length = self.spec.length
        hop = self.spec.hop
        buf_t, buf_v = self._t, self._v
        cap = buf_t.shape[0]
        n = t.shape[0]
        pos = 0
        while pos < n:
            if self._b == cap:  # full: move the held samples to the front
                a, b = self._a, self._b
                if not self._copy:  # the move would overwrite this push's windows
                    for w in out:
                        w.data = w.data.copy()
                if a < b:
                    buf_t[: b - a] = buf_t[a:b]
                    buf_v[: b - a] = buf_v[a:b]
                    self._shift_runs(a)
                    self._a, self._b = 0, b - a
                    self._unknown_end = max(0, self._unknown_end - a)
                else:  # a hop longer than the window: a - b samples still to skip
                    self._run_at.clear()
                    self._run_label.clear()
                    self._a, self._b = a - b, 0
                    self._unknown_end = 0
            b = self._b
            take = min(cap - b, n - pos)
            if pos == 0 and take == n:
                buf_t[b : b + take] = t
                buf_v[b : b + take] = v
                self._add_runs(b, labels)
            else:
                buf_t[b : b + take] = t[pos : pos + take]
                buf_v[b : b + take] = v[pos : pos + take]
                self._add_runs(b, labels[pos : pos + take] if labels is not None else None)
            b += take
            self._b = b
            self._last_t = buf_t.item(b - 1)
            if not finite:
                self._unknown_end = b
            pos += take
            a = self._a
            while b - a >= length:
                end = a + length
                out.append(
                    Window(
                        self._count,
                        buf_t.item(a),
                        buf_t.item(end - 1),
                        buf_v[a:end].copy() if self._copy else buf_v[a:end],
                        self._label_of(a, end),
                        self._unknown_end <= a,
                    )
                )
                self._count += 1
                a += hop
            self._a = a
        return out

    def _add_runs(self, at: int, labels: Sequence[str | None] | None) -> None:
        """Record the labels of the samples written at buffer position ``at`` onwards."""
        run_label = self._run_label
        if labels is None or labels.count(first := labels[0]) == len(labels):
            # one label (or none) for the whole piece: the common case
            lbl = None if labels is None else first
            if not run_label or run_label[-1] != lbl:
                self._run_at.append(at)
                run_label.append(lbl)
            return
        for i, lbl in enumerate(labels):
            if not run_label or run_label[-1] != lbl:
                self._run_at.append(at + i)
                run_label.append(lbl)

    def _label_of(self, a: int, end: int) -> str | None:
        """:func:`uniform_label` of the samples at buffer positions ``[a, end)``."""
        run_at = self._run_at
        if run_at[-1] <= a:  # the window lies in the newest run
            return self._run_label[-1]
        i = bisect_right(run_at, a) - 1
        if run_at[i + 1] < end:  # another run starts inside the window
            return None
        return self._run_label[i]

    def _shift_runs(self, a: int) -> None:
        """Buffer position ``a`` becomes 0: drop the runs that end before it."""
        run_at, run_label = self._run_at, self._run_label
        first = bisect_right(run_at, a) - 1  # the run holding position a
        del run_at[:first], run_label[:first]
        run_at[:] = [max(p - a, 0) for p in run_at]


@dataclass(frozen=True)
class Normalizer:
    """Per-channel standardisation whose statistics travel with the model (its manifest)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise DataError("normalisation mean and std differ in length")
        if any(not s > 0 for s in self.std):
            raise DataError("normalisation std must be positive for every channel")
        # cached arrays for the hot path (the dataclass stays frozen and comparable)
        object.__setattr__(self, "_mean", np.asarray(self.mean, dtype=np.float32))
        object.__setattr__(self, "_inv_std", (1.0 / np.asarray(self.std)).astype(np.float32))

    @classmethod
    def fit(cls, values: np.ndarray) -> Normalizer:
        """Statistics over every sample of ``values`` [..., channels]."""
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        std = flat.std(axis=0)
        std[std < 1e-8] = 1.0
        return cls(tuple(float(x) for x in flat.mean(axis=0)), tuple(float(x) for x in std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != len(self.mean):
            raise DataError(f"expected {len(self.mean)} channels, got shape {x.shape}")
        out: np.ndarray = (x - self._mean) * self._inv_std  # type: ignore[attr-defined]
        return out.astype(np.float32, copy=False)
