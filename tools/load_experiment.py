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
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from agent.manifest import load_manifest
from agent.profile import load_profile
from agent.profile_checks import SPEED_RANGE
from agent.recording import RecordingReader
from tools.cli import (
    ArgumentParser,
    CommandError,
    folder_problem,
    number_in,
    path_arg,
    positive_int,
    run_main,
)
from tools.emulated_board import calibrate, write_table
from tools.load_report import plot, table
from tools.load_run import ExperimentConfig, Run, experiment_profile, run_mode
from tools.loadgen import Phase, parse_trace

# This module is the command: its options, the order of the runs and what it writes (the
# docstring above is its --help). The parts: the emulated board and its latency table
# (tools.emulated_board), one run of the real agent under the trace (tools.load_run), the table
# and the plot (tools.load_report).

ROOT = Path(__file__).resolve().parents[1]
MODES = ("static-largest", "static-smallest", "adaptive")


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m tools.load_experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--recording",
        type=path_arg,
        default=ROOT / "recordings/hapt-s02-e04.har.csv.gz",
        help="labelled recording replayed in a loop (recordings/hapt-s02-e04.har.csv.gz, "
        "a test subject)",
    )
    ap.add_argument(
        "--profile",
        type=path_arg,
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
        type=path_arg,
        default=ROOT / "docs/load-experiment.json",
        help="summary written here (docs/load-experiment.json: overwrites the committed one)",
    )
    ap.add_argument(
        "--plot",
        type=path_arg,
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


def check_outputs(*outputs: tuple[str, Path]) -> None:
    """CommandError naming the option unless each file can be written (its folder created):
    checked before the calibration and the runs, not after them."""
    for option, path in outputs:
        if path.is_dir():
            raise CommandError(f"{option} {path}: is a folder, not a file")
        why = folder_problem(path.parent)
        if why is None and path.exists() and not os.access(path, os.W_OK):
            why = "it is read-only"
        elif why is not None and why.startswith("it "):  # "it": the folder, not the file
            why = f"{path.parent}{why[2:]}"
        if why is not None:
            raise CommandError(f"{option} {path}: cannot write it ({why})")


def by_load(values: dict[str, float | None]) -> str:
    """``load 0: 93.10 %, load 1: 88.00 %``: a per-load share to read."""
    return ", ".join(
        f"load {k}: {'-' if v is None else f'{100 * v:.2f} %'}" for k, v in values.items()
    )


def experiment(argv: list[str] | None) -> None:
    args, phases, modes = parse_args(argv)
    check_outputs(("--json", args.json), ("--plot", args.plot))  # before minutes of runs
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
    cfg = ExperimentConfig(
        recording=args.recording,
        speed=args.speed,
        work_factor=args.work_factor,
        deadline_ms=args.deadline_ms,
        dwell_s=args.dwell_s,
        monitor_s=args.monitor_s,
    )
    p50 = calibrate(manifest, members, args.work_factor, args.calibration_runs, 0.02)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        tbl = Path(tmp) / "latency-table.json"
        write_table(tbl, p50, args.work_factor)
        prof = experiment_profile(base, cfg, tbl)
        for mode in modes:
            print(
                f"running {mode} over the trace ({sum(p.seconds for p in phases):g} s)...",
                file=sys.stderr,
            )
            runs.append(run_mode(mode, prof, cfg, phases, ids))
    print(table(runs))
    for r in runs:
        print(
            f"{r.mode}: members {', '.join(r.summary['members_used'])}; "
            f"miss rate by load {by_load(r.summary['miss_rate_by_load'])}; "
            f"accuracy by load {by_load(r.summary['accuracy_by_load'])}"
        )
    summary = {
        "command": "python -m tools.load_experiment " + " ".join(argv or sys.argv[1:]),
        "trace": args.trace,
        "speed": args.speed,
        "work_factor": args.work_factor,
        "deadline_ms": args.deadline_ms,
        "static": ids,
        "calibrated_p50_ms": {k: round(v, 4) for k, v in p50.items()},
        "runs": [r.summary for r in runs],
    }
    failed = []  # each written if it can be: a full disk for one must not cost the other
    for option, path, write in (
        ("--json", args.json, lambda: args.json.write_text(json.dumps(summary, indent=1))),
        ("--plot", args.plot, lambda: plot(runs, {m.id: m.macs for m in members}, cfg, args.plot)),
    ):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write()
        except OSError as exc:  # disk full, or the folder changed meanwhile
            failed.append(f"{option} {path}: cannot write it ({exc.strerror or exc})")
    if failed:
        raise CommandError("; ".join(failed))
    print(f"wrote {args.json} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
