"""Turn a replay's timings into the figures the pipeline benchmark reports (pure logic)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agent.errors import DataError
from agent.inference import Classifier, to_model_input
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


def _ratio(over: float, raw: float) -> float:
    return over / raw if raw else float("nan")


@dataclass(frozen=True)
class ModelTiming:
    """The figures of the windows one bank member classified (adaptive runs switch members)."""

    model: str
    windows: int
    overhead_median_us: float
    """Median over this member's windows of each window's share of its step's agent time."""
    infer_median_us: float
    """session.run inside the pipeline, this member's windows."""
    raw_median_us: float
    """Bare session.run of the same windows on this member."""

    @property
    def ratio(self) -> float:
        return _ratio(self.overhead_median_us, self.raw_median_us)


@dataclass(frozen=True)
class OverheadReport:
    windows: int
    wall_s: float
    windows_per_s: float
    overhead_median_us: float
    """Agent time per window excluding session.run: decode + windowing + ... + publish."""
    decode_median_us: float
    """Reading and parsing the recording: its own median over the same windows (a median of a
    part is no part of the median of the whole, so it is printed apart)."""
    infer_median_us: float
    """session.run inside the pipeline."""
    raw_median_us: float
    """session.run in a bare loop over the same windows, each on the member that classified
    it, same run."""
    overhead_mean_us: float = 0.0
    """All agent time outside session.run divided by the windows (amortises block decoding)."""
    decode_mean_us: float = 0.0
    """Of which: reading and parsing the recording (means add up, medians do not)."""
    by_model: tuple[ModelTiming, ...] = ()
    """One entry per member that classified windows, in the order they first ran."""

    @property
    def ratio(self) -> float:
        return _ratio(self.overhead_median_us, self.raw_median_us)

    @property
    def mean_ratio(self) -> float:
        return _ratio(self.overhead_mean_us, self.raw_median_us)

    def lines(self) -> list[str]:
        mixed = len(self.by_model) > 1
        same = "same windows, each on the member that classified it" if mixed else "same windows"
        out = [
            f"windows                  {self.windows}",
            f"windows per second       {self.windows_per_s:.1f}",
            f"agent overhead / window  {self.overhead_median_us:.1f} us median",
            f"                         {self.overhead_mean_us:.1f} us mean "
            f"(of which recording decode {self.decode_mean_us:.1f} us)",
            f"recording decode         {self.decode_median_us:.1f} us median per window "
            "(a median of its own, not a part of the overhead median)",
            f"session.run in pipeline  {self.infer_median_us:.1f} us median",
            f"raw session.run loop     {self.raw_median_us:.1f} us median ({same})",
            f"overhead / raw inference {100 * self.ratio:.1f} % (medians), "
            f"{100 * self.mean_ratio:.1f} % (mean overhead / raw median)",
        ]
        if mixed:
            width = max(len(m.model) for m in self.by_model)
            out.append(
                "by member (the figures above mix them; overhead / raw: each member's medians "
                "over its own windows)"
            )
            out.append(
                f"  {'member':<{width}}  windows  overhead median  session.run in pipeline  "
                "raw session.run  overhead / raw"
            )
            for m in self.by_model:
                out.append(
                    f"  {m.model:<{width}}  {m.windows:>7}  {m.overhead_median_us:>12.1f} us  "
                    f"{m.infer_median_us:>20.1f} us  {m.raw_median_us:>12.1f} us  "
                    f"{100 * m.ratio:>12.1f} %"
                )
        return out


def nothing_to_time(stats: RunStats) -> str | None:
    """The line ``--timing`` prints instead of a report when no window was classified (a report
    of zeros and ``nan %`` would read as a measurement); ``None`` when there are windows."""
    if stats.windows:
        return None
    if stats.rejected:
        n = stats.rejected
        why = f"all {n} windows were" if n > 1 else "its one window was"
        why += " rejected (see the log above)"
    else:
        why = "the recording did not fill one window (see the line above)"
    return f"no windows to time: {why}"


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


def overhead_of_each_window(stats: RunStats) -> list[float]:
    """:func:`per_window`'s overhead, one entry per window (a chunk that completed ``n``
    windows gives each of them its ``1/n`` share), in the order the windows were classified."""
    overhead, _ = per_window(stats)
    counts = [n for n in stats.windows_per_chunk if n]
    return [o for o, n in zip(overhead, counts, strict=True) for _ in range(n)]


def raw_times_on_own_members(
    stats: RunStats,
    sessions: Mapping[str, Classifier],
    perf: Callable[[], float],
    warmup: int = 20,
) -> list[float]:
    """Bare ``session.run`` of every recorded window, each normalised for and run on the member
    that classified it (``stats.models``; an adaptive run switches members), in the order the
    pipeline ran them, after ``warmup`` runs of each member on its own windows. One time per
    window, aligned with ``stats.infer_s``. Raises :class:`ModelError` when a run fails."""
    if len(stats.models) != len(stats.windows_data):
        raise DataError(
            f"{len(stats.windows_data)} windows recorded for {len(stats.models)} member names"
        )
    inputs: list[np.ndarray] = []
    runs: list[Callable[[np.ndarray], object]] = []
    mine: dict[str, list[np.ndarray]] = {}
    for data, mid in zip(stats.windows_data, stats.models, strict=True):
        c = sessions[mid]
        x = to_model_input(c.entry.normalization(data), c.entry.input.layout)
        inputs.append(x)
        runs.append(c.engine.run)
        mine.setdefault(mid, []).append(x)
    for mid, xs in mine.items():  # each member warmed on its own windows (cycled when few)
        warm = sessions[mid].engine.run
        for i in range(warmup):
            warm(xs[i % len(xs)])
    out: list[float] = []
    for x, run in zip(inputs, runs, strict=True):
        t0 = perf()
        run(x)
        out.append(perf() - t0)
    return out


def _by_model(stats: RunStats, raw_s: Sequence[float]) -> tuple[ModelTiming, ...]:
    """Per-member figures; empty when the run did not name each window's member."""
    n = stats.windows
    if not n or len(stats.models) != n or len(raw_s) != n or len(stats.infer_s) != n:
        return ()
    overhead = overhead_of_each_window(stats)
    if len(overhead) != n:
        return ()
    rows: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for mid, o, i, r in zip(stats.models, overhead, stats.infer_s, raw_s, strict=True):
        lo, li, lr = rows.setdefault(mid, ([], [], []))
        lo.append(o)
        li.append(i)
        lr.append(r)
    med = statistics.median
    return tuple(
        ModelTiming(mid, len(lo), med(lo) * 1e6, med(li) * 1e6, med(lr) * 1e6)
        for mid, (lo, li, lr) in rows.items()
    )


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
        by_model=_by_model(stats, raw_s),
    )
