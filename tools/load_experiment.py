"""The load experiment: static-largest, static-smallest and adaptive on the same load trace.

    python -m tools.load_experiment                       # defaults below, about 5 minutes
    python -m tools.load_experiment --trace "0:10,3:10,0:10" --modes adaptive

By default it rewrites docs/load-experiment.json and docs/img/load-experiment.png (the committed
results); pass --json and --plot to write elsewhere.

Each run replays a test subject (looping) through the real agent (``build_agent``: the same
pipeline, policy, monitor and sessions as the daemon; predictions go to an in-memory publisher)
while :mod:`tools.loadgen` follows the trace. Per window it records the member that ran, its
inference latency and whether the prediction was right; per run it reports p50/p99 latency, the
deadline-miss rate, accuracy, energy per window (the meter the profile's ``[energy]`` finds,
named), the number of switches and the monitor's CPU share, and it draws latency, load and the
chosen member's MACs over time.

**The emulated board.** On this x86 VM one inference takes 0.05-0.25 ms: far shorter than a
scheduler time slice, so CPU load barely changes it (measured: docs/adaptive.md). A Raspberry Pi
runs the same members one to two orders of magnitude slower, long enough to be time-sliced by
competing processes. ``--work-factor K`` emulates such a board: every inference runs the member
K times on the same input (same model, same output), so its CPU time is K times longer and load
stretches it the way it does on a slow board. The policy's latency table is measured for that
board first (``calibrate``: the median of periodic runs on an idle machine), as ``har-agent bench
-m all --table`` would on a real one. With ``--work-factor 1`` nothing is emulated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agent.inference import Engine, OrtEngine, SessionSettings
from agent.manifest import Manifest, ModelEntry, load_manifest
from agent.payload import Prediction
from agent.profile import Profile, load_profile
from agent.profile_checks import SPEED_RANGE
from agent.publishers import MemoryPublisher
from agent.recording import RecordingReader
from agent.wiring import RunOptions, build_agent
from tools.cli import positive_int, run_main
from tools.loadgen import LoadGenerator, Phase, parse_trace

ROOT = Path(__file__).resolve().parents[1]
MODES = ("static-largest", "static-smallest", "adaptive")


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
                "table_version": 1,
                "board": f"{platform.machine()} x{k} emulated (tools.load_experiment)",
                "onnxruntime": onnxruntime.__version__,
                "threads": 1,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "models": {m: {"p50_ms": v} for m, v in p50.items()},
            },
            indent=1,
        )
    )


@dataclasses.dataclass
class Run:
    mode: str
    t: list[float] = dataclasses.field(default_factory=list)
    model: list[str] = dataclasses.field(default_factory=list)
    latency_ms: list[float] = dataclasses.field(default_factory=list)
    correct: list[bool | None] = dataclasses.field(default_factory=list)
    load: list[int] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def experiment_profile(base: Profile, args: argparse.Namespace, table: Path) -> Profile:
    pol = dataclasses.replace(
        base.policy,
        deadline_ms=args.deadline_ms,
        dwell_s=args.dwell_s,
        latency_table=str(table),
        candidates=(),
    )
    mon = dataclasses.replace(base.monitor, enabled=True, interval_s=args.monitor_s)
    return dataclasses.replace(base, policy=pol, monitor=mon)


def run_mode(
    mode: str,
    prof: Profile,
    args: argparse.Namespace,
    phases: list[Phase],
    ids: dict[str, str],
) -> Run:
    run = Run(mode)
    gen = LoadGenerator(phases)
    t0 = [0.0]

    def observe(p: Prediction) -> None:
        t = time.monotonic() - t0[0]
        run.t.append(t)
        run.model.append(p.model)
        run.latency_ms.append(p.latency_ms)
        run.correct.append(None if p.truth is None else p.labels[p.index] == p.truth)
        run.load.append(gen.level_at(t))

    opts = RunOptions(
        recording=args.recording,
        speed=args.speed,
        loop=True,
        model_id=ids.get(mode),
        policy_mode="adaptive" if mode == "adaptive" else "static",
        wrap_engine=lambda e: RepeatEngine(e, args.work_factor),
    )
    agent = build_agent(prof, options=opts, publisher=MemoryPublisher(), observer=observe)
    timer = threading.Timer(gen.duration_s, agent.stop.set)
    t0[0] = time.monotonic()
    gen.start()
    timer.start()
    try:
        stats = agent.run()
    finally:
        timer.cancel()
        gen.stop()
    lat = np.array(run.latency_ms)
    labelled = [c for c in run.correct if c is not None]
    ctl = agent.pipeline.controller
    run.summary = {
        "mode": mode,
        "windows": len(lat),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "miss_rate": float(np.mean(lat > args.deadline_ms)),
        "accuracy": float(np.mean(labelled)) if labelled else None,
        "labelled": len(labelled),
        "energy_mj_per_window": 1000 * agent.energy_j / len(lat)
        if agent.energy_j is not None and len(lat)
        else None,
        "meter": agent.meter.name if agent.meter else None,
        "switches": stats.switches,
        "monitor_cpu_share": agent.monitor.cost_share if agent.monitor else None,
        "members_used": sorted(set(run.model)),
        "accuracy_by_load": {str(level): _accuracy(run, level) for level in sorted(set(run.load))},
        "miss_rate_by_load": {
            str(level): float(np.mean(lat[np.array(run.load) == level] > args.deadline_ms))
            for level in sorted(set(run.load))
        },
    }
    if ctl is not None:
        run.summary["final_contention"] = round(ctl.latency.bound(), 3)
    return run


def _accuracy(run: Run, level: int) -> float | None:
    hits = [c for c, ld in zip(run.correct, run.load, strict=True) if ld == level and c is not None]
    return float(np.mean(hits)) if hits else None


def plot(runs: list[Run], macs: dict[str, int], args: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for r in runs:
        axes[0].plot(r.t, r.latency_ms, ".", ms=2, label=r.mode)
    axes[0].axhline(args.deadline_ms, color="k", ls="--", lw=1, label="deadline")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("inference latency (ms)")
    axes[0].legend(loc="upper left", fontsize=8, markerscale=4)
    ref = runs[0]
    axes[1].step(ref.t, ref.load, where="post", color="tab:red")
    axes[1].set_ylabel("busy load processes")
    for r in runs:
        axes[2].step(r.t, [macs[m] / 1e6 for m in r.model], where="post", label=r.mode)
    axes[2].set_ylabel("running member (M MACs)")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"Load experiment: deadline {args.deadline_ms:g} ms, board emulated x{args.work_factor}, "
        f"replay x{args.speed:g}"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def table(runs: list[Run]) -> str:
    head = (
        "| run | windows | p50 ms | p99 ms | deadline misses | accuracy | mJ/window | switches |"
        " monitor CPU |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in runs:
        s = r.summary
        acc = f"{100 * s['accuracy']:.2f}%" if s["accuracy"] is not None else "-"
        mj = f"{s['energy_mj_per_window']:.2f}" if s["energy_mj_per_window"] is not None else "-"
        mon = f"{100 * s['monitor_cpu_share']:.2f}%" if s["monitor_cpu_share"] is not None else "-"
        rows.append(
            f"| {s['mode']} | {s['windows']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{100 * s['miss_rate']:.1f}% | {acc} | {mj} | {s['switches']} | {mon} |"
        )
    return "\n".join(rows)


def number_in(lo: float, hi: float, *, above: bool = False) -> Callable[[str], float]:
    """A float option in [lo, hi], or (lo, hi] with ``above`` (argparse: usage line, exit 2)."""
    span = f"{'above' if above else 'at least'} {lo:g} and at most {hi:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo < value <= hi if above else lo <= value <= hi):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {span} (got {text})")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.load_experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--recording",
        type=Path,
        default=ROOT / "recordings/hapt-s02-e04.har.csv.gz",
        help="labelled recording replayed in a loop (recordings/hapt-s02-e04.har.csv.gz, "
        "a test subject)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=ROOT / "profiles/default.toml",
        help="agent profile: its model folder and policy, with the deadline, dwell and monitor "
        "interval below (profiles/default.toml)",
    )
    ap.add_argument(
        "--trace",
        default="0:15,1:15,2:15,3:15,0:15",
        help="busy:seconds phases of background load (0:15,1:15,2:15,3:15,0:15)",
    )
    ap.add_argument(
        "--speed",
        type=number_in(*SPEED_RANGE),
        default=20.0,
        help="replay speed, x real time (20)",
    )
    ap.add_argument(
        "--work-factor",
        type=positive_int,
        default=20,
        help="emulated board slowdown: each inference runs the member K times (20; 1: none)",
    )
    ap.add_argument(
        "--deadline-ms",
        type=number_in(0, 3_600_000, above=True),
        default=10.0,
        help="the policy's per-window latency deadline, and what counts as a miss (10)",
    )
    ap.add_argument(
        "--dwell-s",
        type=number_in(0, 86_400),
        default=3.0,
        help="the policy's minimum time on a member before it switches again (3)",
    )
    ap.add_argument(
        "--monitor-s",
        type=number_in(0.05, 3600),
        default=0.5,
        help="resource monitor interval in seconds (0.5)",
    )
    ap.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated runs, in order ({','.join(MODES)})",
    )
    ap.add_argument(
        "--calibration-runs",
        type=positive_int,
        default=30,
        help="timed calls per member for the emulated board's latency table (30)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=ROOT / "docs/load-experiment.json",
        help="summary written here (docs/load-experiment.json: overwrites the committed one)",
    )
    ap.add_argument(
        "--plot",
        type=Path,
        default=ROOT / "docs/img/load-experiment.png",
        help="figure written here (docs/img/load-experiment.png: overwrites the committed one)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log every switch and its reason")
    return ap


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Phase], list[str]]:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        phases = parse_trace(args.trace)
    except ValueError as exc:
        ap.error(str(exc))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        ap.error(f"--modes: unknown mode(s) {bad} or none given; known: {', '.join(MODES)}")
    return args, phases, modes


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: experiment(argv))


def experiment(argv: list[str] | None) -> None:
    args, phases, modes = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    RecordingReader(args.recording).close()  # a bad recording: one line now, not after calibration
    base = load_profile(args.profile)
    manifest = load_manifest(base.resolve(base.model.dir))
    members = list(manifest.models)
    fp32 = [m for m in members if m.family != "int8"]
    ids = {
        "static-largest": max(fp32, key=lambda m: m.macs).id,
        "static-smallest": min(fp32, key=lambda m: m.macs).id,
    }
    p50 = calibrate(manifest, members, args.work_factor, args.calibration_runs, 0.02)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        tbl = Path(tmp) / "latency-table.json"
        write_table(tbl, p50, args.work_factor)
        prof = experiment_profile(base, args, tbl)
        for mode in modes:
            print(
                f"running {mode} over the trace ({sum(p.seconds for p in phases):g} s)...",
                file=sys.stderr,
            )
            runs.append(run_mode(mode, prof, args, phases, ids))
    print(table(runs))
    for r in runs:
        print(
            f"{r.mode}: members {r.summary['members_used']}; "
            f"miss rate by load {r.summary['miss_rate_by_load']}; "
            f"accuracy by load {r.summary['accuracy_by_load']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "command": "python -m tools.load_experiment " + " ".join(argv or sys.argv[1:]),
                "trace": args.trace,
                "speed": args.speed,
                "work_factor": args.work_factor,
                "deadline_ms": args.deadline_ms,
                "static": ids,
                "calibrated_p50_ms": {k: round(v, 4) for k, v in p50.items()},
                "runs": [r.summary for r in runs],
            },
            indent=1,
        )
    )
    plot(runs, {m.id: m.macs for m in members}, args, args.plot)
    print(f"wrote {args.json} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
