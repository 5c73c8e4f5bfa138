"""Store-and-forward against a real mosquitto: outages and crashes lose nothing committed."""

import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.forwarder import OutboxPublisher
from agent.outbox_counts import read_counts
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import profile_for
from tests.agent.reliability import (
    AgentThread,
    SeqSubscriber,
    persistent_broker,
    spawn_agent,
    write_profile,
)
from tests.conftest import Broker, free_port, start_broker, start_broker_conf, stop_broker

pytestmark = pytest.mark.integration


def test_broker_outage_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    broker = persistent_broker(tmp_path, port)  # keeps sessions on disk across its restart
    try:
        sub = SeqSubscriber(port, "outage-sub")
    except Exception:
        stop_broker(broker)  # no broker outlives a failed test
        raise
    stop = threading.Event()
    prof = profile_for(port, outbox=tmp_path / "outbox.db")
    agent = build_agent(prof, options=RunOptions(speed=40.0, loop=False), stop=stop)
    th = AgentThread(agent)
    fwd = agent.publisher
    assert isinstance(fwd, OutboxPublisher)
    try:
        deadline = time.monotonic() + 60
        while sub.unique < 10 and time.monotonic() < deadline:  # streaming, not a sleep
            time.sleep(0.05)
        assert sub.unique >= 10
        stop_broker(broker)  # the broker goes away mid-stream ...
        before = fwd.stats()
        time.sleep(3.0)  # ... the agent keeps classifying and spooling ...
        during = fwd.stats()
        assert during.produced > before.produced and during.length > before.length
        broker = persistent_broker(tmp_path, port)  # ... and comes back
        th.join(120)
        assert not th.is_alive()
        n = th.windows
        (boot,) = sub.boots(wait_s=30)
        missing = sub.wait_complete(boot, n, timeout=60)
        assert not missing, f"{len(missing)} of {n} missing, first {missing[:10]}"
        db = sqlite3.connect(tmp_path / "outbox.db")
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        db.close()
    finally:
        stop.set()
        th.join(30)
        sub.close()
        stop_broker(broker)


def _counter(outbox: Path, name: str) -> int:
    return read_counts(outbox)[name]


def test_sigkill_and_restart_delivers_every_committed_message(
    tmp_path: Path, broker: Broker
) -> None:
    """Kill the agent at several points of its stream; after each restart the backlog goes
    out. Judged by what a subscriber received, not by the outbox's own counters alone."""
    outbox = tmp_path / "outbox.db"
    sub = SeqSubscriber(broker.port, "crash-sub")
    prof = write_profile(tmp_path / "p.toml", broker.port, outbox=outbox, speed=25.0)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for extra_s in (0.0, 0.7, 1.5):  # the kill lands at different points of the stream
            before = _counter(outbox, "produced")
            proc = spawn_agent(prof)
            procs.append(proc)
            deadline = time.monotonic() + 60
            while _counter(outbox, "produced") <= before and time.monotonic() < deadline:
                time.sleep(0.05)  # running and committing: not a fixed sleep after start
            assert _counter(outbox, "produced") > before
            time.sleep(extra_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            db = sqlite3.connect(outbox)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.close()
        # a final clean run drains every killed run's backlog first
        before = _counter(outbox, "produced")
        proc = spawn_agent(prof, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while _counter(outbox, "produced") <= before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        db = sqlite3.connect(outbox)
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        db.close()
        produced, acked = _counter(outbox, "produced"), _counter(outbox, "acked")
        assert left == 0 and produced == acked > 0
        # the subscriber's view: every acknowledged prediction arrived, and each boot's
        # predictions are complete from seq 0 (a kill only ever loses an uncommitted tail)
        deadline = time.monotonic() + 30
        while sub.unique < acked and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sub.unique == acked, (sub.unique, acked)
        boots = sub.boots()
        assert len(boots) == 4
        for boot in boots:
            bits = sub.seen[boot]
            n = max(i for i, b in enumerate(bits) if b) + 1
            assert sub.missing(boot, n) == [], boot
    finally:
        for p in procs:  # a failed assertion must not leave an agent holding the device id
            if p.poll() is None:
                p.kill()
                p.wait()
        sub.close()


def test_broker_refusal_goes_to_dead_letter_once(tmp_path: Path) -> None:
    """An ACL that forbids the prediction topic: MQTT v5 PUBACK 0x87, no retry storm."""
    port = free_port()
    acl = tmp_path / "acl"
    acl.write_text(
        "topic readwrite har/+/status\ntopic readwrite har/+/cmd\n"
        "topic readwrite har/+/cmd/response\ntopic readwrite homeassistant/#\n"
    )
    # (start_broker_conf keeps mosquitto root, so that it may read the ACL the test wrote)
    broker = start_broker_conf(
        tmp_path,
        port,
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nacl_file {acl}\n",
    )
    try:
        prof = profile_for(port, outbox=tmp_path / "outbox.db")
        agent = build_agent(prof, options=RunOptions(speed=0, loop=False))
        stats = agent.run()
        db = sqlite3.connect(tmp_path / "outbox.db")
        dead = db.execute("SELECT COUNT(*), MIN(reason) FROM dead_letter").fetchone()
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        db.close()
        counters = read_counts(tmp_path / "outbox.db")
        assert left == 0
        assert dead[0] == stats.windows and "0x87" in dead[1]
        assert counters["dead"] == stats.windows and counters["acked"] == 0
    finally:
        stop_broker(broker)


def test_cap_holds_during_a_long_outage_and_drops_are_counted(tmp_path: Path) -> None:
    import dataclasses

    broker = start_broker(tmp_path)
    port = broker.port
    prof = profile_for(port, outbox=tmp_path / "outbox.db")
    prof = dataclasses.replace(prof, outbox=dataclasses.replace(prof.outbox, max_mb=0.01))
    stop = threading.Event()
    agent = build_agent(prof, options=RunOptions(speed=60.0, loop=True), stop=stop)
    fwd = agent.publisher
    th = AgentThread(agent)
    try:
        time.sleep(1.0)
        stop_broker(broker)
        peak = 0
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:  # the outage: the agent keeps producing
            peak = max(peak, fwd.stats().bytes)  # type: ignore[attr-defined]
            time.sleep(0.05)
        st = fwd.stats()  # type: ignore[attr-defined]
        assert th.is_alive()
        assert peak <= 0.01 * 1024 * 1024
        assert st.dropped_cap > 0 and st.length > 0
        broker = start_broker(tmp_path, port)
        deadline = time.monotonic() + 30
        while fwd.stats().acked <= st.acked and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.1)
        assert fwd.stats().acked > st.acked  # type: ignore[attr-defined]
    finally:
        stop.set()
        th.join(30)
        stop_broker(broker)
    assert not th.is_alive()
