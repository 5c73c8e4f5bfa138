"""What one ``har-agent bench`` run of a model found (docs/benchmarks.md explains every figure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds. Percentiles interpolate linearly between order statistics."""

    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not seconds:
            raise ValueError("no latencies")
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return cls(
            min_ms=float(ms.min()),
            mean_ms=float(ms.mean()),
            std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            p50_ms=float(p50),
            p90_ms=float(p90),
            p95_ms=float(p95),
            p99_ms=float(p99),
            max_ms=float(ms.max()),
        )


@dataclass(frozen=True)
class EnergyFigures:
    meter: str
    kind: str
    """``measured`` or ``estimated``."""
    mj_per_inference: float | None
    """The work's energy: above idle (measured meters: minus the idle baseline; the estimate:
    core_w x CPU time). None when a measured meter has no baseline (``--baseline 0``)."""
    total_mj_per_inference: float
    """Everything the meter saw during the loop (the estimate: plus idle_w x wall time), / runs."""
    idle_w: float | None
    idle_source: str | None
    """``measured`` (baseline before the loops) or ``profile`` (energy.idle_w)."""
    loop_j: float


@dataclass(frozen=True)
class PlainCheck:
    """The bench loop against a plain ``session.run`` loop, alternating blocks, same inputs."""

    bench_p50_ms: float
    plain_p50_ms: float
    ratio: float
    blocks: int
    runs_each: int


@dataclass
class BenchResult:
    model: str
    source: str
    """``manifest`` (sha256 verified) or ``file`` (outside the manifest: no checksum, accuracy)."""
    path: str
    file_bytes: int
    params: int | None
    macs: int | None
    input_shape: list[int]
    inputs: str
    threads: int
    spinning: bool
    init_ms: float
    first_ms: float
    warmup: int
    runs: int
    latency: LatencyStats
    wall_s: float
    ips: float
    cpu_percent: float
    rss_mb: float
    session_mb: float
    peak_rss_mb: float
    energy: EnergyFigures | None = None
    energy_note: str | None = None
    accuracy: float | None = None
    labelled: int = 0
    windows: int = 0
    plain: PlainCheck | None = None
    notes: list[str] = field(default_factory=list)
    paced: LatencyStats | None = None
    """Runs one at a time, each after a pause: the figure the latency table records."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """One CSV row."""
        e = self.energy
        p = self.plain
        row: dict[str, Any] = {
            "model": self.model,
            "source": self.source,
            "file_bytes": self.file_bytes,
            "params": self.params,
            "macs": self.macs,
            "inputs": self.inputs,
            "threads": self.threads,
            "spinning": self.spinning,
            "init_ms": self.init_ms,
            "first_ms": self.first_ms,
            "warmup": self.warmup,
            "runs": self.runs,
            **asdict(self.latency),
            "wall_s": self.wall_s,
            "ips": self.ips,
            "cpu_percent": self.cpu_percent,
            "rss_mb": self.rss_mb,
            "session_mb": self.session_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "energy_mj": e.mj_per_inference if e else None,
            "energy_total_mj": e.total_mj_per_inference if e else None,
            "meter": e.meter if e else None,
            "meter_kind": e.kind if e else None,
            "accuracy": self.accuracy,
            "labelled": self.labelled,
            "plain_p50_ms": p.plain_p50_ms if p else None,
            "bench_plain_ratio": p.ratio if p else None,
        }
        q = self.paced  # --table: what the latency table records (empty cells otherwise)
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            row[f"paced_{key}"] = getattr(q, key) if q is not None else None
        return row
