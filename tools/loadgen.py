"""A bounded background CPU load that follows a time-varying profile, and stops by itself.

A trace is a list of phases, ``busy:seconds`` each: ``"0:15,1:15,2:15,0:15"`` is 15 s idle, then
one busy process, then two, then idle. Every busy worker is a separate process spinning in pure
Python (one core's worth of runnable work) that exits on its own at the end of its phase, so a
crash of the experiment cannot leave load behind; :meth:`LoadGenerator.stop` ends it early.

    python -m tools.loadgen "0:5,2:10,0:5"      # run a trace on its own (watch it in top)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

MAX_BUSY = 4 * (os.cpu_count() or 1)
MAX_TRACE_S = 3600.0


@dataclass(frozen=True)
class Phase:
    busy: int
    seconds: float


def parse_trace(text: str) -> list[Phase]:
    """``"0:15,1:15"`` -> phases; raises ValueError with the offending part named."""
    phases: list[Phase] = []
    for part in text.split(","):
        busy_s, sep, secs_s = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            phase = Phase(int(busy_s), float(secs_s))
        except ValueError:
            raise ValueError(f"trace part {part!r} is not busy:seconds (e.g. 2:15)") from None
        if not 0 <= phase.busy <= MAX_BUSY:
            raise ValueError(f"trace part {part!r}: busy workers must be 0..{MAX_BUSY}")
        if not 0 < phase.seconds <= MAX_TRACE_S:
            raise ValueError(f"trace part {part!r}: seconds must be in (0, {MAX_TRACE_S:g}]")
        phases.append(phase)
    if sum(p.seconds for p in phases) > MAX_TRACE_S:
        raise ValueError(f"the trace lasts more than {MAX_TRACE_S:g} s")
    return phases


def _spin(until_wall: float) -> None:
    """One core's worth of work until ``until_wall`` (time.time()). Ctrl-C is left to the
    process that started it (:meth:`LoadGenerator.stop` ends the worker): a terminal's Ctrl-C
    reaches every process of its group, and a worker's own ``KeyboardInterrupt`` would print
    ``Process SpawnProcess-N:`` and a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    x = 0
    while time.time() < until_wall:
        for _ in range(20_000):
            x += 1


class LoadGenerator:
    def __init__(self, phases: list[Phase]) -> None:
        self.phases = phases
        self.duration_s = sum(p.seconds for p in phases)
        self._t0: float | None = None
        self._stop = threading.Event()
        self._procs: list[mp.process.BaseProcess] = []
        self._thread: threading.Thread | None = None
        self._ctx = mp.get_context("spawn")  # no copy of the caller's threads or sessions

    def level_at(self, t: float) -> int:
        """Busy workers the trace asks for ``t`` seconds after the start."""
        edge = 0.0
        for p in self.phases:
            edge += p.seconds
            if t < edge:
                return p.busy
        return 0

    def alive(self) -> list[int]:
        """Process ids of the workers running now."""
        return [p.pid for p in self._procs if p.is_alive() and p.pid is not None]

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wall0 = time.time()
        edge = 0.0
        for phase in self.phases:
            start, edge = edge, edge + phase.seconds
            if self._stop.wait(max(0.0, wall0 + start - time.time())):
                return
            for _ in range(phase.busy):
                proc = self._ctx.Process(target=_spin, args=(wall0 + edge,), daemon=True)
                proc.start()
                self._procs.append(proc)
        self._stop.wait(max(0.0, wall0 + edge - time.time()))

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        for proc in self._procs:
            proc.join(timeout=5.0)

    def stop(self) -> None:
        self._stop.set()
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        self.wait()


def main(argv: Sequence[str] | None = None) -> None:
    from tools.cli import ArgumentParser  # here: the workers import this module, not it

    ap = ArgumentParser(
        prog="python -m tools.loadgen",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("trace", help='phases busy:seconds, e.g. "0:15,1:15,2:15,0:15"')
    args = ap.parse_args(argv)
    try:
        gen = LoadGenerator(parse_trace(args.trace))
    except ValueError as exc:
        ap.error(str(exc))
    gen.start()
    try:
        gen.wait()
    except KeyboardInterrupt:
        gen.stop()


if __name__ == "__main__":
    main()
