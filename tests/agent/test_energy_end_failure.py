"""A meter whose last reading raises something unexpected at the end of a run: the source, the
meter and the publisher are still closed (the energy was read outside the clean-up)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from agent import wiring
from agent.energy import MeterKind
from agent.publishers import MemoryPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import profile_for


class FailsAtTheEnd:
    name = "fake:package (measured)"
    kind: MeterKind = "measured"
    covers = "whole package"
    failure = None
    resolution_s = 0.0

    def __init__(self) -> None:
        self.reads = 0
        self.closed = False
        self.failing = False

    def joules(self) -> float:
        if self.failing:
            raise RuntimeError("meter went away")
        self.reads += 1
        return 5.0 * time.monotonic()

    def close(self) -> None:
        self.closed = True


def test_a_meter_failing_at_the_end_still_lets_everything_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meter = FailsAtTheEnd()
    monkeypatch.setattr(wiring, "open_meter", lambda *a, **k: meter)
    pub = MemoryPublisher()
    prof = profile_for()
    prof = dataclasses.replace(prof, device=dataclasses.replace(prof.device, id="test-energy-end"))
    agent = build_agent(prof, options=RunOptions(speed=0, loop=False, monitor=False), publisher=pub)
    closed: list[str] = []
    close_source = agent.pipeline.source.close

    def closing_source() -> None:
        closed.append("source")
        close_source()

    monkeypatch.setattr(agent.pipeline.source, "close", closing_source)
    run_pipeline = agent.pipeline.run

    def run_then_fail_the_meter() -> object:
        stats = run_pipeline()
        meter.failing = True  # the counter's last reading (its span) raises
        return stats

    monkeypatch.setattr(agent.pipeline, "run", run_then_fail_the_meter)
    with pytest.raises(RuntimeError, match="meter went away"):
        agent.run()
    assert closed == ["source"]
    assert meter.closed
    assert pub.stopped
