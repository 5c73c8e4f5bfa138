"""The emulated board of the load experiment (:mod:`tools.load_experiment`): a board ``k`` times
slower than this machine, and its latency table.

On a fast x86 machine one inference is far shorter than a scheduler time slice, so CPU load
barely changes it; a Raspberry Pi runs the same members one to two orders of magnitude slower,
long enough to be time-sliced by competing processes. :class:`RepeatEngine` runs every inference
``k`` times on the same input (same model, same output), so its CPU time is ``k`` times longer.
:func:`calibrate` measures the policy's latency table for that board (the median of periodic
runs on an idle machine), as ``har-agent bench -m all --table`` would on a real one, and
:func:`write_table` writes it in the format :func:`agent.latency.load_latency_table` reads."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agent.inference import Engine, OrtEngine, SessionSettings
from agent.latency import TABLE_VERSION
from agent.manifest import Manifest, ModelEntry


class RepeatEngine:
    """Runs the wrapped engine ``k`` times per call: a board ``k`` times slower (see above)."""

    def __init__(self, engine: Engine, k: int) -> None:
        self.engine = engine
        self.k = k

    def run(self, x: np.ndarray) -> np.ndarray:
        for _ in range(self.k - 1):
            self.engine.run(x)
        return self.engine.run(x)


def calibrate(
    manifest: Manifest, members: list[ModelEntry], k: int, runs: int, gap_s: float
) -> dict[str, float]:
    """Median latency (ms) of each member on the emulated board, called periodically."""
    out: dict[str, float] = {}
    for e in tqdm(members, desc="calibrating", unit="member"):
        eng = RepeatEngine(OrtEngine(manifest.path_of(e), e, SessionSettings()), k)
        x = np.zeros(e.input.shape, dtype=np.float32)
        for _ in range(3):
            eng.run(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            eng.run(x)
            times.append((time.perf_counter() - t0) * 1000.0)
            time.sleep(gap_s)
        out[e.id] = statistics.median(times)
    return out


def write_table(path: Path, p50: dict[str, float], k: int) -> None:
    import platform

    import onnxruntime

    path.write_text(
        json.dumps(
            {
                "table_version": TABLE_VERSION,
                "board": f"{platform.machine()} x{k} emulated (tools.load_experiment)",
                "onnxruntime": onnxruntime.__version__,
                "threads": 1,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "models": {m: {"p50_ms": v} for m, v in p50.items()},
            },
            indent=1,
        )
    )
