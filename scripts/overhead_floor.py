#!/usr/bin/env python3
"""The least a Python agent can do per window, stage by stage (issue 2's overhead target).

    python scripts/overhead_floor.py [RECORDING] [-m cnn1d-base] [--rounds 3]

``har-agent replay --fast --timing`` measures the whole agent. This script measures a ladder of
bare loops over the same recording's windows, each adding one of the agent's own stages (its real
code, not copies) to the one before, timed as ``--timing`` times the agent: per window, the time
outside ``session.run`` against a bare ``session.run`` loop in the same round:

1. ``session.run`` alone on ready inputs (the reference);
2. + normalisation into the model's input buffer (``InputBuffer.fill``);
3. + softmax and argmax (``softmax_values``, ``first_argmax``);
4. + three ISO timestamps, the JSON payload and an unflushed stdout-style write
   (``IsoFormatter``, ``PredictionEncoder``, ``StdoutPublisher``);
5. + cutting the window from one hop of the stream (``Front.push``: channel selection, resampling
   when the member needs it, the windower).

Left out even at the top of the ladder, and in the agent: recording decode, the NaN/Inf and
saturation checks, smoothing, command polling, statistics. So the top rung is a floor under the
agent's figure on the same machine, not an estimate of it. Rounds alternate the rungs; each
rung's figure is the median over its windows, and the table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.errors import AgentError  # noqa: E402
from agent.floats import first_argmax  # noqa: E402
from agent.fronts import Front  # noqa: E402
from agent.inference import InputBuffer, OrtEngine, SessionSettings, softmax_values  # noqa: E402
from agent.manifest import load_manifest  # noqa: E402
from agent.payload import IsoFormatter, PredictionEncoder  # noqa: E402
from agent.publishers import StdoutPublisher  # noqa: E402
from agent.recording import Chunk, read_recording  # noqa: E402
from agent.timing import hop_in_source_samples  # noqa: E402

RUNGS = ("session.run", "+ normalise", "+ softmax", "+ payload", "+ window")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "recording",
        nargs="?",
        type=Path,
        default=ROOT / "recordings" / "hapt-s02-e04.har.csv.gz",
        help="recording whose windows to use (default: the bundled test subject 2)",
    )
    ap.add_argument("-m", "--model", default="cnn1d-base", help="bank member (cnn1d-base)")
    ap.add_argument("--models", type=Path, default=ROOT / "models", help="bank folder")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the ladder (3)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if not args.recording.is_file():
        ap.error(f"{args.recording}: no such recording")
    try:
        entry = load_manifest(args.models).get(args.model)
        header, whole = read_recording(args.recording)
        engine = OrtEngine(args.models / entry.file, entry, SessionSettings())
    except AgentError as exc:
        ap.error(str(exc))
    hop = hop_in_source_samples(entry.input, header.sample_rate_hz)
    # as the reader hands them over: one hop each, with the bound of their steps (its block's)
    max_step = float(np.diff(whole.t).max())
    chunks = [
        Chunk(
            whole.t[i : i + hop],
            whole.values[i : i + hop],
            whole.labels[i : i + hop] if whole.labels is not None else None,
            max_step,
        )
        for i in range(0, len(whole), hop)
    ]
    cutter = Front(header, entry.input, args.recording.name)
    for c in chunks:
        cutter.push(c)
    windows = [w.data for w in cutter.ready]
    buf = InputBuffer(entry)
    ready = [buf.fill(w).copy() for w in windows]
    encoder = PredictionEncoder("floor", entry.labels, entry.id, "none", 1)
    iso = IsoFormatter()
    perf = time.perf_counter
    run = engine.run

    def ladder(rung: int) -> tuple[float, float]:
        front = Front(header, entry.input, args.recording.name)
        publisher = StdoutPublisher(io.StringIO(), flush_each=False)
        origin = time.time()
        overhead: list[float] = []
        inference: list[float] = []
        source: Callable[[int], np.ndarray | None]
        if rung >= 4:

            def source(i: int) -> np.ndarray | None:
                front.push(chunks[i])
                return front.ready.popleft().data if front.ready else None

            count = len(chunks)
        else:

            def source(i: int) -> np.ndarray | None:
                return windows[i]

            count = len(windows)
        for i in range(count):
            t0 = perf()
            w = source(i)
            if w is None:
                continue
            x = buf.fill(w) if rung >= 1 else ready[i]
            t1 = perf()
            logits = run(x)
            t2 = perf()
            if rung >= 2:
                probs = softmax_values(logits.reshape(-1).tolist())
                index = first_argmax(probs)
            if rung >= 3:
                start = iso(origin + 1.28 * i)
                end = iso(origin + 1.28 * i + 2.56)
                payload = encoder.encode_window(
                    i,
                    i,
                    start,
                    end,
                    probs,
                    index,
                    (t2 - t1) * 1e3,
                    iso(time.time()),
                    None,
                    None,
                    None,
                )
                publisher.publish("har/floor/prediction", payload, 1)
            t3 = perf()
            overhead.append((t1 - t0) + (t3 - t2))
            inference.append(t2 - t1)
        return statistics.median(overhead) * 1e6, statistics.median(inference) * 1e6

    for rung in range(len(RUNGS)):  # warm-up
        ladder(rung)
    rows: dict[int, list[tuple[float, float]]] = {r: [] for r in range(len(RUNGS))}
    for _ in range(args.rounds):
        base = ladder(0)[1]
        for rung in range(len(RUNGS)):
            over, _infer = ladder(rung)
            rows[rung].append((over, over / base))
    print(f"{entry.id}, {len(windows)} windows, {args.rounds} rounds (medians over rounds)")
    print("| rung | overhead / window | ratio to bare session.run |")
    print("|---|---|---|")
    for rung, name in enumerate(RUNGS):
        over = statistics.median(o for o, _ in rows[rung])
        ratio = statistics.median(r for _, r in rows[rung])
        print(f"| {name} | {over:.1f} µs | {100 * ratio:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
