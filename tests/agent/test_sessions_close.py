"""Review s14, finding G: a background session load still inside ONNX Runtime when the process
exits aborts it (SIGABRT, exit 134). The pool's ``close()`` joins the loads in flight (bounded),
and the agent calls it when it stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agent.clock import SystemClock
from agent.inference import Classifier, Engine, SessionSettings
from agent.manifest import ModelEntry, load_manifest
from agent.payload import Prediction
from agent.publishers import MemoryPublisher
from agent.sessions import SessionPool
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import MODELS, RECORDINGS
from tests.agent.test_adaptive import BIG, MID, SMALL, adaptive_profile, entries


class Dummy:
    def run(self, x: Any) -> Any:
        return x


def load_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("har-load-")]


class SlowLoader:
    """A loader that takes ``delay_s``, or until :attr:`release` is set when ``delay_s`` is None."""

    def __init__(self, delay_s: float | None) -> None:
        self.delay_s = delay_s
        self.started = threading.Event()
        self.release = threading.Event()
        self.done: list[str] = []

    def __call__(self, path: Path, entry: ModelEntry) -> Classifier:
        self.started.set()
        if self.delay_s is None:
            self.release.wait(30)
        else:
            time.sleep(self.delay_s)
        self.done.append(entry.id)
        return Classifier(entry, Dummy(), time.perf_counter)


def slow_pool(loader: SlowLoader) -> SessionPool:
    bank = load_manifest(MODELS)
    return SessionPool(
        bank, entries().values(), SessionSettings(), time.perf_counter, 1 << 30, loader=loader
    )


def test_close_joins_a_load_in_flight() -> None:
    loader = SlowLoader(0.3)
    pool = slow_pool(loader)
    ready = threading.Event()
    pool.request(MID, on_ready=lambda _m: ready.set())
    assert loader.started.wait(5)
    assert loader.done == []  # still loading when the stop comes
    assert pool.close(timeout=10) is True
    assert loader.done == [MID] and ready.is_set()
    assert pool.get(MID) is not None
    assert load_threads() == []


def test_close_is_bounded_and_refuses_new_loads() -> None:
    loader = SlowLoader(None)  # hangs until released
    pool = slow_pool(loader)
    pool.request(MID)
    assert loader.started.wait(5)
    t0 = time.monotonic()
    assert pool.close(timeout=0.2) is False  # gave up waiting: a stop cannot hang on a load
    assert time.monotonic() - t0 < 2
    pool.request(SMALL)  # refused once closed
    assert [t.name for t in load_threads()] == [f"har-load-{MID}"]
    loader.release.set()
    assert pool.close(timeout=10) is True  # idempotent; this time the load ends
    assert loader.done == [MID] and load_threads() == []
    assert pool.load_now(SMALL) is not None  # loading in the caller's thread still works


def test_agent_stop_joins_a_session_load_in_flight() -> None:
    """A load started in the run (a decision, a force command) and still running when the run
    stops is joined before ``run()`` returns, so the process cannot exit while it is inside
    ONNX Runtime."""
    stop = threading.Event()
    slow = {"on": False}
    finished: list[str] = []
    agent_box: list[Any] = []

    class SlowToLoad:
        """Wraps an engine: building it takes 0.5 s once ``slow['on']`` is set."""

        def __init__(self, engine: Engine) -> None:
            self.engine = engine
            if slow["on"]:
                time.sleep(0.5)
                finished.append("loaded")

        def run(self, x: Any) -> Any:
            return self.engine.run(x)

    def observer(p: Prediction) -> None:
        if stop.is_set():
            return
        ctl = agent_box[0].pipeline.controller
        slow["on"] = True
        ctl.pool.request(SMALL)  # what a decision or a force of a member not loaded starts
        stop.set()

    prof = adaptive_profile(preload_mb=0.0)  # only the member it starts with is loaded
    agent = build_agent(
        prof,
        options=RunOptions(
            recording=RECORDINGS[0], speed=0.0, loop=False, monitor=False, wrap_engine=SlowToLoad
        ),
        publisher=MemoryPublisher(),
        clock=SystemClock(),
        stop=stop,
        observer=observer,
    )
    agent_box.append(agent)
    ctl = agent.pipeline.controller
    assert ctl is not None and ctl.pool.loaded() == [BIG]
    agent.run()
    assert stop.is_set()
    assert finished == ["loaded"]  # the load in flight at the stop was waited for
    assert load_threads() == []
    assert SMALL in ctl.pool.loaded()
