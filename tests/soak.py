"""Soak (issue 6, fault test 8): the daemon replays a recording in a loop at full speed through the
disk outbox to a real mosquitto that is restarted now and then; its RSS and open file descriptors
are sampled from outside, a persistent subscriber accounts for every (boot, seq).

    python -m tests.soak --hours 4                     # the long run, a line every --every s
    python -m tests.soak --minutes 2 --restarts 3      # what the CI test runs (shorter)

At the end the agent is stopped with SIGTERM; rows it had not sent by then stay in its outbox
and are delivered by the agent's own forwarder, so "missing" means lost, not late. Exit status 1
when something is missing or memory / descriptors grew past the tolerance. Not collected by
pytest (no ``test_`` prefix); tests/agent/test_reliability_soak.py runs a short one.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from agent.outbox_counts import read_counts
from tests.agent.reliability import SeqSubscriber, persistent_broker, spawn_agent, write_profile
from tests.conftest import free_port, stop_broker


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    queue: int
    produced: int
    received: int
    duplicates: int


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    produced: int = 0
    received: int = 0
    duplicates: int = 0
    missing: int = 0
    boots: int = 0
    restarts: int = 0
    left_at_stop: int = 0
    exit_code: int | None = None
    warm: Sample | None = None
    end: Sample | None = None

    def problems(self, rss_tolerance_mb: float, fd_tolerance: int) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{self.missing} predictions missing")
        if self.boots != 1:
            out.append(f"{self.boots} boot ids (the agent restarted?)")
        if self.exit_code != 0:
            out.append(f"the agent exited with {self.exit_code}")
        if self.warm and self.end:
            if self.end.rss_mb > self.warm.rss_mb + rss_tolerance_mb:
                out.append(f"RSS grew {self.warm.rss_mb:.1f} -> {self.end.rss_mb:.1f} MB")
            if self.end.fds > self.warm.fds + fd_tolerance:
                out.append(f"open fds grew {self.warm.fds} -> {self.end.fds}")
        return out


def _outbox_counts(path: Path) -> tuple[int, int]:
    """(rows waiting, rows produced) read from the agent's outbox, read-only."""
    counts = read_counts(path)
    return counts["length"], counts["produced"]


def _drain(profile_path: Path, timeout_s: float) -> int:
    """Send what the agent left in its outbox with the agent's own forwarder; rows left."""
    from agent.profile import load_profile
    from agent.publisher_factory import make_publisher

    pub = make_publisher(load_profile(profile_path), use_outbox=True)
    pub.start()
    left = pub.flush(timeout_s)
    pub.stop()
    return left


def soak(
    duration_s: float,
    restarts: int,
    outage_s: float,
    *,
    every_s: float = 10.0,
    warmup_s: float | None = None,
    speed: float = 0.0,
    workdir: Path | None = None,
    echo: bool = True,
) -> SoakResult:
    """Run the soak; ``restarts`` broker restarts spread evenly, each ``outage_s`` long.
    ``warmup_s`` (default: a quarter of the run) is when the reference RSS/fd sample is taken."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="har-soak-"))
    port = free_port()
    broker = persistent_broker(tmp, port)
    sub = SeqSubscriber(port, "soak-sub")
    outbox = tmp / "outbox.db"
    prof = write_profile(
        tmp / "soak.toml", port, outbox=outbox, speed=speed, mqtt="reconnect_max_s = 4"
    )
    err = (tmp / "agent.log").open("wb")
    proc = spawn_agent(prof, stderr=err)
    agent = psutil.Process(proc.pid)
    result = SoakResult()
    warm_at = duration_s / 4 if warmup_s is None else warmup_s
    restart_at = [duration_s * (i + 1) / (restarts + 1) for i in range(restarts)]
    start = time.monotonic()
    next_sample = 0.0
    down_until: float | None = None
    if echo:
        print(f"soak: {tmp} (agent pid {proc.pid}, broker port {port})", flush=True)
        print("     t_s  rss_mb  fds   queue   produced   received  dups  broker", flush=True)
    try:
        while (now := time.monotonic() - start) < duration_s:
            if proc.poll() is not None:
                break
            if down_until is None and restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                stop_broker(broker)
                down_until = now + outage_s
            elif down_until is not None and now >= down_until:
                broker = persistent_broker(tmp, port)
                result.restarts += 1
                down_until = None
            if now >= next_sample:
                queue, produced = _outbox_counts(outbox)
                s = Sample(
                    round(now, 1),
                    agent.memory_info().rss / 1048576,
                    agent.num_fds(),
                    queue,
                    produced,
                    sub.unique,
                    sub.duplicates,
                )
                result.samples.append(s)
                if result.warm is None and now >= warm_at and down_until is None:
                    result.warm = s
                if echo:
                    print(
                        f"{s.t_s:8.1f} {s.rss_mb:7.1f} {s.fds:4d} {s.queue:7d} {s.produced:10d} "
                        f"{s.received:10d} {s.duplicates:5d}  {'down' if down_until else 'up'}",
                        flush=True,
                    )
                next_sample = now + every_s
            time.sleep(0.2)
        if down_until is not None:
            broker = persistent_broker(tmp, port)
            result.restarts += 1
        queue, produced = _outbox_counts(outbox)
        result.end = Sample(
            round(time.monotonic() - start, 1),
            agent.memory_info().rss / 1048576,
            agent.num_fds(),
            queue,
            produced,
            sub.unique,
            sub.duplicates,
        )
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        result.exit_code = proc.wait(120)
        result.left_at_stop, result.produced = _outbox_counts(outbox)
        if result.left_at_stop:
            _drain(prof, 120.0)
        boots = sub.boots(wait_s=30)
        result.boots = len(boots)
        deadline = time.monotonic() + 60
        while boots and sub.unique < result.produced and time.monotonic() < deadline:
            time.sleep(0.2)
        result.missing = sum(len(sub.missing(b, result.produced)) for b in boots[:1])
        if not boots:
            result.missing = result.produced
        result.received, result.duplicates = sub.unique, sub.duplicates
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        sub.close()
        stop_broker(broker)
    if echo:
        w, e = result.warm, result.end
        if w and e:
            print(
                f"soak: RSS {w.rss_mb:.1f} MB at {w.t_s:.0f} s -> {e.rss_mb:.1f} MB at end; "
                f"fds {w.fds} -> {e.fds}",
                flush=True,
            )
        print(
            f"soak: {result.produced} produced, {result.received} received, "
            f"{result.duplicates} duplicates, {result.missing} missing, "
            f"{result.restarts} broker restarts, {result.left_at_stop} left at stop "
            f"(delivered after), agent exit {result.exit_code}",
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--hours", type=float, help="how long to run (default 1 h)")
    length.add_argument("--minutes", type=float, help="how long to run, in minutes")
    ap.add_argument("--restarts", type=int, help="broker restarts (default: one every 10 min)")
    ap.add_argument(
        "--outage", type=float, default=10.0, help="seconds each restart keeps the broker down"
    )
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--speed", type=float, default=0.0, help="replay speed; 0 = full speed")
    ap.add_argument("--rss-tolerance-mb", type=float, default=10.0)
    ap.add_argument("--fd-tolerance", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="keep the broker, outbox and agent log here")
    args = ap.parse_args(argv)
    duration = 3600.0 * (args.hours or 0) or 60.0 * (args.minutes or 0) or 3600.0
    restarts = args.restarts if args.restarts is not None else max(1, int(duration // 600))
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    result = soak(
        duration, restarts, args.outage, every_s=args.every, speed=args.speed, workdir=args.workdir
    )
    problems = result.problems(args.rss_tolerance_mb, args.fd_tolerance)
    for p in problems:
        print(f"soak: FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
