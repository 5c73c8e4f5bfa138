"""Issue 6, fault test 1: the broker stopped for 30 s mid-stream at a high replay rate.

Every produced (boot, seq) reaches a persistent subscriber, with no gap; the only duplicates are
QoS 1 redeliveries, so there are at most as many as can be in flight when the broker dies (the
agent's window to the broker, the broker's in-flight window to the subscriber). A short outage
runs in test_outbox_integration.py; this one is the issue's 30 s.
"""

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from agent.forwarder import OutboxPublisher
from agent.outbox_counts import read_counts
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import profile_for
from tests.agent.reliability import AgentThread, SeqSubscriber, persistent_broker
from tests.conftest import free_port, stop_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 30.0
BROKER_INFLIGHT = 20  # mosquitto's max_inflight_messages default


def test_thirty_second_outage_mid_stream_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    broker = persistent_broker(tmp_path, port)
    try:
        sub = SeqSubscriber(port, "outage30-sub")
    except Exception:
        stop_broker(broker)  # no broker outlives a failed test
        raise
    prof = profile_for(port, outbox=tmp_path / "outbox.db")
    # backoff capped at 5 s (a profile setting) so the reconnect comes soon after the broker
    prof = dataclasses.replace(prof, mqtt=dataclasses.replace(prof.mqtt, reconnect_max_s=5))
    stop = threading.Event()
    agent = build_agent(prof, options=RunOptions(speed=50.0, loop=True), stop=stop)
    fwd = agent.publisher
    assert isinstance(fwd, OutboxPublisher)
    th = AgentThread(agent)
    try:
        deadline = time.monotonic() + 60
        while sub.unique < 20 and time.monotonic() < deadline:  # mid-stream ...
            time.sleep(0.1)
        assert sub.unique >= 20
        stop_broker(broker)  # ... the broker goes away for 30 s ...
        before = fwd.stats()
        time.sleep(OUTAGE_S)
        during = fwd.stats()
        assert th.is_alive()
        assert during.produced > before.produced  # inference went on, rows were committed
        assert during.length > before.length
        broker = persistent_broker(tmp_path, port)  # ... and comes back
        deadline = time.monotonic() + 60
        while fwd.stats().acked <= during.acked and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # a little streaming after the outage too
    finally:
        stop.set()
        th.join(60)
    try:
        assert not th.is_alive()
        n = th.windows
        final = read_counts(fwd.outbox.path)  # (the stop closed the outbox)
        assert final["produced"] == n  # every window was committed (no cap was reached)
        (boot,) = sub.boots(wait_s=30)
        missing = sub.wait_complete(boot, n, timeout=60)
        assert not missing, f"{len(missing)} of {n} missing, first {missing[:10]}"
        assert sub.unique == n
        assert sub.duplicates <= fwd.window + BROKER_INFLIGHT, sub.duplicates
        assert final["length"] == 0
    finally:
        sub.close()
        stop_broker(broker)
