"""The per-board latency table the adaptive policy reads (written by ``bench --table``; read by
:mod:`agent.latency`)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.bench import PACED_GAP_S
from agent.bench_figures import BenchResult, LatencyStats
from agent.latency import TABLE_VERSION


def board_name() -> str:
    """Architecture, board or CPU model, and OS: ``aarch64 Raspberry Pi 5 Model B ...``."""
    cpu = platform.processor()
    model = None
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    found: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        found.setdefault(key.strip().lower(), value.strip())
    model = found.get("model") if not found.get("model", "").isdigit() else None
    cpu = model or found.get("model name") or found.get("hardware") or cpu
    return f"{platform.machine()} {cpu} ({platform.system()} {platform.release()})".strip()


def _table_row(st: LatencyStats) -> dict[str, float]:
    return {
        "p50_ms": round(st.p50_ms, 5),
        "p90_ms": round(st.p90_ms, 5),
        "p99_ms": round(st.p99_ms, 5),
        "mean_ms": round(st.mean_ms, 5),
    }


def latency_table(results: Sequence[BenchResult], board: str, threads: int) -> dict[str, Any]:
    """The per-board latency table the policy reads (agent/latency.py)."""
    import datetime

    import onnxruntime as ort

    return {
        "table_version": TABLE_VERSION,
        "board": board,
        "onnxruntime": ort.__version__,
        "threads": threads,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "measured": (
            f"one run at a time, each after a {PACED_GAP_S * 1000:g} ms pause, as the daemon "
            "runs a model once per hop (back_to_back_p50_ms: the benchmark's loop)"
        ),
        "models": {
            r.model: {
                **_table_row(r.paced or r.latency),
                "back_to_back_p50_ms": round(r.latency.p50_ms, 5),
            }
            for r in results
            if r.source == "manifest"
        },
    }
