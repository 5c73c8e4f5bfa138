"""Turn a replay's timings into the figures the pipeline benchmark reports (pure logic)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.errors import DataError
from agent.manifest import InputSpec
from agent.run_stats import RunStats


def hop_in_source_samples(spec: InputSpec, source_rate_hz: float) -> int:
    """Source samples in one hop of the model's windows: the chunk size with which a fast
    replay completes one window per step (a lower-resolution member's hop spans more source
    samples than its own hop count)."""
    hop = spec.hop * source_rate_hz / spec.rate_hz if spec.rate_hz > 0 else math.nan
    if not math.isfinite(hop):  # a rate of 0, NaN or inf (the manifest loader refuses those)
        raise DataError(
            f"cannot size a hop of {spec.hop} samples at {spec.rate_hz!r} Hz "
            f"from a {source_rate_hz!r} Hz source"
        )
    return max(1, round(hop))


@dataclass(frozen=True)
class OverheadReport:
    windows: int
    wall_s: float
    windows_per_s: float
    overhead_median_us: float
    """Agent time per window excluding session.run: decode + windowing + ... + publish."""
    decode_median_us: float
    """Of which: reading and parsing the recording."""
    infer_median_us: float
    """session.run inside the pipeline."""
    raw_median_us: float
    """session.run in a bare loop over the same windows, same run."""
    overhead_mean_us: float = 0.0
    """All agent time outside session.run divided by the windows (amortises block decoding)."""
    decode_mean_us: float = 0.0

    @property
    def ratio(self) -> float:
        return self.overhead_median_us / self.raw_median_us if self.raw_median_us else float("nan")

    @property
    def mean_ratio(self) -> float:
        return self.overhead_mean_us / self.raw_median_us if self.raw_median_us else float("nan")

    def lines(self) -> list[str]:
        return [
            f"windows                  {self.windows}",
            f"windows per second       {self.windows_per_s:.1f}",
            f"agent overhead / window  {self.overhead_median_us:.1f} us median "
            f"(of which recording decode {self.decode_median_us:.1f} us)",
            f"                         {self.overhead_mean_us:.1f} us mean "
            f"(of which recording decode {self.decode_mean_us:.1f} us)",
            f"session.run in pipeline  {self.infer_median_us:.1f} us median",
            f"raw session.run loop     {self.raw_median_us:.1f} us median (same windows)",
            f"overhead / raw inference {100 * self.ratio:.1f} % (medians), "
            f"{100 * self.mean_ratio:.1f} % (mean overhead / raw median)",
        ]


def per_window(stats: RunStats) -> tuple[list[float], list[float]]:
    """Per-window overhead and decode times, one entry per chunk that completed windows.

    A chunk that completed no window (chunks shorter than a hop, or a resampled source whose
    hop spans more source samples than a chunk holds) still cost time: its cost is carried
    into the next chunk that completes one, so no agent time goes missing from the median.
    Time after the last window goes to the last entry.
    """
    overhead: list[float] = []
    decode: list[float] = []
    carry_r = carry_p = 0.0
    for r, p, n in zip(stats.read_s, stats.process_s, stats.windows_per_chunk, strict=True):
        carry_r += r
        carry_p += p
        if n:
            overhead.append((carry_r + carry_p) / n)
            decode.append(carry_r / n)
            carry_r = carry_p = 0.0
            last_n = n
    if overhead and (carry_r or carry_p):
        overhead[-1] += (carry_r + carry_p) / last_n
        decode[-1] += carry_r / last_n
    return overhead, decode


def raw_session_times(
    run: Callable[[np.ndarray], object],
    inputs: Sequence[np.ndarray],
    perf: Callable[[], float],
    warmup: int = 20,
) -> list[float]:
    for x in inputs[:warmup]:
        run(x)
    out: list[float] = []
    for x in inputs:
        t0 = perf()
        run(x)
        out.append(perf() - t0)
    return out


def overhead_report(stats: RunStats, raw_s: Sequence[float]) -> OverheadReport:
    overhead, decode = per_window(stats)
    med = statistics.median
    return OverheadReport(
        windows=stats.windows,
        wall_s=stats.wall_s,
        windows_per_s=stats.windows / stats.wall_s if stats.wall_s else 0.0,
        overhead_median_us=med(overhead) * 1e6 if overhead else 0.0,
        decode_median_us=med(decode) * 1e6 if decode else 0.0,
        infer_median_us=med(stats.infer_s) * 1e6 if stats.infer_s else 0.0,
        raw_median_us=med(raw_s) * 1e6 if raw_s else 0.0,
        overhead_mean_us=1e6 * (sum(stats.read_s) + sum(stats.process_s)) / stats.windows
        if stats.windows
        else 0.0,
        decode_mean_us=1e6 * sum(stats.read_s) / stats.windows if stats.windows else 0.0,
    )
