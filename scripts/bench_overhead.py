#!/usr/bin/env python3
"""Pipeline-overhead benchmark (issue 2): alternate ``har-agent replay --fast --timing`` runs
over models and outputs, and print the median of each figure over the runs (docs/benchmarks.md).

    python scripts/bench_overhead.py RECORDING [--runs 3] [--models cnn1d-base,wc-w0.75-r096]
        [--outputs stdout,mqtt]

``stdout`` is ``--no-mqtt`` with the messages written to a temporary file; ``mqtt`` publishes to
the profile's broker (start one first, e.g. ``mosquitto -p 1883 -d``).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FIGURES = {
    "windows_per_s": r"windows per second\s+([\d.]+)",
    "overhead_median_us": r"agent overhead / window\s+([\d.]+) us median",
    "overhead_mean_us": r"^\s+([\d.]+) us mean",
    "raw_median_us": r"raw session\.run loop\s+([\d.]+) us median",
}


def one_run(har_agent: str, recording: Path, model: str, output: str) -> dict[str, float]:
    # its own device id: never a running agent's (refused) nor the demo's retained topics
    cmd = [har_agent, "replay", str(recording), "--fast", "--timing", "-m", model]
    cmd += ["--device", "bench-overhead"]
    if output == "stdout":
        cmd.append("--no-mqtt")
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True, check=False)
        except FileNotFoundError:
            raise SystemExit(
                f"error: no {har_agent!r} command here (pass --har-agent PATH)"
            ) from None
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or ["no error output"]
            raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}: {last[0]}")
        out.seek(0)
        text = out.read() + proc.stderr  # the report goes to stderr when stdout has messages
    figures = {}
    for name, pattern in FIGURES.items():
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            raise SystemExit(f"error: no '{name}' in the output of {' '.join(cmd)}")
        figures[name] = float(m.group(1))
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("recording", type=Path, help="recording to replay (binary is fastest)")
    ap.add_argument("--runs", type=int, default=3, help="runs per model and output (3)")
    ap.add_argument("--models", default="cnn1d-base,wc-w0.75-r096", help="comma-separated ids")
    ap.add_argument("--outputs", default="stdout,mqtt", help="stdout and/or mqtt")
    ap.add_argument("--har-agent", default="har-agent", help="the har-agent command to run")
    args = ap.parse_args(argv)
    if not args.recording.is_file():
        ap.error(f"{args.recording}: no such recording")
    outputs = args.outputs.split(",")
    if not set(outputs) <= {"stdout", "mqtt"} or args.runs < 1:
        ap.error("--outputs takes stdout and/or mqtt; --runs must be at least 1")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for i in range(args.runs):
        for model in args.models.split(","):
            for output in outputs:
                fig = one_run(args.har_agent, args.recording, model, output)
                runs.setdefault((model, output), []).append(fig)
                print(f"run {i + 1}: {model} {output}: {fig}", file=sys.stderr)
    print(
        "| model | output | windows/s | overhead median | overhead mean | bare session.run "
        "| ratio (median) | ratio (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (model, output), figs in runs.items():
        med = {k: statistics.median(f[k] for f in figs) for k in FIGURES}
        ratio = statistics.median(f["overhead_median_us"] / f["raw_median_us"] for f in figs)
        mean_ratio = statistics.median(f["overhead_mean_us"] / f["raw_median_us"] for f in figs)
        print(
            f"| {model} | {output} | {med['windows_per_s']:,.0f} | "
            f"{med['overhead_median_us']:.0f} µs | {med['overhead_mean_us']:.0f} µs | "
            f"{med['raw_median_us']:.0f} µs | {100 * ratio:.0f} % | {100 * mean_ratio:.0f} % |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
