"""Resampling a stream to a model's rate, shared by training (tools/) and serving (agent/).

Pure logic: an anti-alias low-pass when slowing down, then linear interpolation onto a regular
grid, chunk by chunk, with the same output however the stream is cut into chunks.
"""

from __future__ import annotations

import numpy as np

from agent.errors import DataError
from agent.recording import Chunk
from agent.windowing import GAP_FACTOR


def lowpass_taps(cutoff: float, numtaps: int = 31) -> np.ndarray:
    """A Hamming-windowed sinc low-pass; ``cutoff`` is a fraction of the sample rate (< 0.5)."""
    if not 0 < cutoff < 0.5:
        raise DataError(f"low-pass cutoff must be in (0, 0.5) of the rate, got {cutoff}")
    n = np.arange(numtaps) - (numtaps - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(numtaps)
    return np.asarray(taps / taps.sum(), dtype=np.float64)


class Resampler:
    """Stream samples from ``in_rate`` to ``out_rate``: anti-alias low-pass when slowing down,
    then linear interpolation onto a regular grid. Labels follow the nearest earlier sample.
    A gap in the input restarts the grid (nothing is interpolated across a gap).
    """

    def __init__(self, in_rate: float, out_rate: float, numtaps: int = 31) -> None:
        if not (in_rate > 0 and out_rate > 0):
            raise DataError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._taps = (
            lowpass_taps(0.45 * out_rate / in_rate, numtaps) if out_rate < in_rate else None
        )
        self._reset()

    @property
    def delay_s(self) -> float:
        """Time from a run's first input sample to its first output sample (half the filter)."""
        return 0.0 if self._taps is None else (len(self._taps) - 1) // 2 / self.in_rate

    def _reset(self) -> None:
        self._raw_t = np.zeros(0)
        self._raw_v: np.ndarray | None = None
        self._raw_l: list[str | None] = []
        self._prev: tuple[float, np.ndarray, str | None] | None = None
        self._grid_t0: float | None = None  # the run's first output time
        self._grid_k = 0  # outputs so far in this run: output j is at t0 + j / out_rate

    def push(self, chunk: Chunk) -> Chunk:
        if len(chunk) == 0:
            return chunk
        max_dt = GAP_FACTOR / self.in_rate
        t = chunk.t
        labels: list[str | None] = (
            list(chunk.labels) if chunk.labels is not None else [None] * len(chunk)
        )
        bound = chunk.max_step
        if (
            len(t) < 2
            or (bound is not None and bound <= max_dt)
            or (t[1:] - t[:-1]).max() <= max_dt
        ):  # no gap inside (the common case)
            if self._raw_t.size and t[0] - self._raw_t[-1] > max_dt:
                self._reset()
            ot, ov, ol = self._push_run(t, chunk.values, labels)
            # one run: its output steps are the grid's, 1 / out_rate up to the rounding of the
            # grid times (far below the margin)
            bound = 1.0001 / self.out_rate
            return Chunk(ot, ov, tuple(ol) if chunk.labels is not None else None, bound)
        breaks = [int(b) for b in np.nonzero(np.diff(t) > max_dt)[0] + 1]
        bounds = [0, *breaks, len(chunk)]
        parts: list[tuple[np.ndarray, np.ndarray, list[str | None]]] = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if self._raw_t.size and t[a] - self._raw_t[-1] > max_dt:
                self._reset()
            parts.append(self._push_run(t[a:b], chunk.values[a:b], labels[a:b]))
        out_t = np.concatenate([p[0] for p in parts])
        v = np.concatenate([p[1] for p in parts])
        out_labels = [lbl for p in parts for lbl in p[2]]
        return Chunk(out_t, v, tuple(out_labels) if chunk.labels is not None else None)

    def _filtered(
        self, t: np.ndarray, v: np.ndarray, labels: list[str | None]
    ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """Low-pass the run, keeping enough raw history to continue across chunks."""
        if self._taps is None:
            return t, v.astype(np.float64), labels
        k = len(self._taps)
        all_t = np.concatenate([self._raw_t, t])
        all_v = v.astype(np.float64) if self._raw_v is None else np.concatenate([self._raw_v, v])
        all_l = self._raw_l + labels
        n, n_ch = all_v.shape
        if n < k:
            self._raw_t, self._raw_v, self._raw_l = all_t, all_v, all_l
            return np.zeros(0), np.zeros((0, n_ch)), []
        # every channel in one convolution: the channels laid end to end (plus k - 1 zeros),
        # and only the outputs that lie within one channel kept. Each kept output is the same
        # dot product of the same k samples as a convolution of that channel alone.
        flat = np.zeros(n_ch * n + k - 1)
        flat[: n_ch * n].reshape(n_ch, n)[...] = all_v.T
        out = np.convolve(flat, self._taps, mode="valid").reshape(n_ch, n)[:, : n - k + 1].T
        half = (k - 1) // 2
        out_t = all_t[half : half + out.shape[0]]
        out_l = all_l[half : half + out.shape[0]]
        self._raw_t, self._raw_v, self._raw_l = (
            all_t[-(k - 1) :],
            all_v[-(k - 1) :],
            all_l[-(k - 1) :],
        )
        return out_t, out, out_l

    def _push_run(
        self, t: np.ndarray, v: np.ndarray, labels: list[str | None]
    ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        ft, fv, fl = self._filtered(t, v, labels)
        n_ch = v.shape[1]
        if len(ft) == 0:
            return np.zeros(0), np.zeros((0, n_ch), dtype=np.float32), []
        if self._prev is not None:
            ft = np.concatenate([[self._prev[0]], ft])
            fv = np.concatenate([self._prev[1][None, :], fv])
            fl = [self._prev[2], *fl]
        if self._grid_t0 is None:
            self._grid_t0 = float(ft[0])
        # each grid time from the run's origin and its integer index, never by adding steps:
        # the same times however the input is cut into chunks (bit for bit)
        step = 1.0 / self.out_rate
        t0, k = self._grid_t0, self._grid_k
        count = max(int(np.floor((ft[-1] - (t0 + step * k)) / step + 1e-9)) + 1, 0)
        grid = t0 + step * np.arange(k, k + count, dtype=np.float64)
        out_v = np.empty((grid.shape[0], n_ch), dtype=np.float32)
        for c in range(n_ch):  # (float64 -> float32 on assignment, as astype did)
            out_v[:, c] = np.interp(grid, ft, fv[:, c])
        if fl.count(fl[0]) == len(fl):  # one label (or none) throughout: the common case
            out_l = [fl[0]] * grid.shape[0]
        else:
            # (np.maximum, not np.clip: clip's limit checks cost more than the search here)
            idx = np.maximum(np.searchsorted(ft, grid + 1e-9, side="right") - 1, 0)
            out_l = [fl[i] for i in idx.tolist()]
        self._grid_k = k + count
        self._prev = (float(ft[-1]), fv[-1].copy(), fl[-1])
        return grid, out_v, out_l
