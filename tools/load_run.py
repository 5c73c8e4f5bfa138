"""One run of the load experiment (:mod:`tools.load_experiment`): the real agent
(``build_agent``: the daemon's pipeline, policy, monitor and sessions; predictions go to an
in-memory publisher) replays a recording in a loop on the emulated board while
:mod:`tools.loadgen` follows the load trace. Per window it records the member that ran, its
inference latency, whether the prediction was right and the load; per run it sums them up:
p50/p99 latency, deadline-miss rate, accuracy, energy per window (and the meter), switches and
the monitor's CPU share, in all and per load level."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.payload import Prediction
from agent.profile import Profile
from agent.publishers import MemoryPublisher
from agent.wiring import RunOptions, build_agent
from tools.emulated_board import RepeatEngine
from tools.loadgen import LoadGenerator, Phase


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """What every run of one experiment shares (the command's options)."""

    recording: Path  # replayed in a loop
    speed: float  # replay speed, x real time
    work_factor: int  # the emulated board's slowdown (1: none)
    deadline_ms: float  # the policy's deadline, and what counts as a miss
    dwell_s: float  # the policy's minimum time on a member
    monitor_s: float  # resource monitor interval
    version: int = 1


@dataclasses.dataclass
class Run:
    mode: str
    t: list[float] = dataclasses.field(default_factory=list)
    model: list[str] = dataclasses.field(default_factory=list)
    latency_ms: list[float] = dataclasses.field(default_factory=list)
    correct: list[bool | None] = dataclasses.field(default_factory=list)
    load: list[int] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def experiment_profile(base: Profile, cfg: ExperimentConfig, table: Path) -> Profile:
    """``base`` with the experiment's deadline, dwell and monitor interval, and ``table`` (the
    emulated board's latency table) for the policy, over the whole bank."""
    pol = dataclasses.replace(
        base.policy,
        deadline_ms=cfg.deadline_ms,
        dwell_s=cfg.dwell_s,
        latency_table=str(table),
        candidates=(),
    )
    mon = dataclasses.replace(base.monitor, enabled=True, interval_s=cfg.monitor_s)
    return dataclasses.replace(base, policy=pol, monitor=mon)


def run_mode(
    mode: str,
    prof: Profile,
    cfg: ExperimentConfig,
    phases: list[Phase],
    ids: dict[str, str],
) -> Run:
    """One run over the trace: ``adaptive``, or a static mode on its member ``ids[mode]``."""
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
        recording=cfg.recording,
        speed=cfg.speed,
        loop=True,
        model_id=ids.get(mode),
        policy_mode="adaptive" if mode == "adaptive" else "static",
        wrap_engine=lambda e: RepeatEngine(e, cfg.work_factor),
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
        "miss_rate": float(np.mean(lat > cfg.deadline_ms)),
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
            str(level): float(np.mean(lat[np.array(run.load) == level] > cfg.deadline_ms))
            for level in sorted(set(run.load))
        },
    }
    if ctl is not None:
        run.summary["final_contention"] = round(ctl.latency.bound(), 3)
    return run


def _accuracy(run: Run, level: int) -> float | None:
    hits = [c for c, ld in zip(run.correct, run.load, strict=True) if ld == level and c is not None]
    return float(np.mean(hits)) if hits else None
