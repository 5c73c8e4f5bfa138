"""Latency of several ONNX Runtime sessions measured in one run, interleaved.

The build machine is shared and noisy, so a ratio (int8 vs fp32, pruned vs parent, any member vs
the largest) is only meaningful when both sides are timed under the same load. Here every
session gets its own warm-up, then rounds of ``runs`` calls go to each session in turn (the order
rotates every round), so a burst of load hits all of them alike. Batch 1, one ``session.run`` per
call, the sessions built by :func:`tools.export.session` with one intra-op thread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort


def interleaved_latency(
    sessions: Mapping[str, ort.InferenceSession],
    feeds: Mapping[str, np.ndarray],
    rounds: int = 10,
    runs: int = 50,
    warmup: int = 50,
) -> dict[str, dict[str, float]]:
    """p50 / p90 / mean in ms and the number of timed calls, per session name."""
    names = list(sessions)
    inputs = {
        n: {sessions[n].get_inputs()[0].name: np.ascontiguousarray(feeds[n], np.float32)}
        for n in names
    }
    for n in names:
        for _ in range(warmup):
            sessions[n].run(None, inputs[n])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            sess, feed, out = sessions[n], inputs[n], times[n]
            for _ in range(runs):
                t0 = time.perf_counter()
                sess.run(None, feed)
                out.append((time.perf_counter() - t0) * 1000.0)
    result = {}
    for n, ts in times.items():
        ts.sort()
        result[n] = {
            "p50": round(statistics.median(ts), 4),
            "p90": round(ts[int(0.9 * (len(ts) - 1))], 4),
            "mean": round(statistics.fmean(ts), 4),
            "runs": len(ts),
        }
    return result
