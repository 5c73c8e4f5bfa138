"""Store-and-forward against a real mosquitto: outages and crashes lose nothing committed."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.forwarder import OutboxPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import ROOT, profile_for
from tests.agent.reliability import SeqSubscriber
from tests.conftest import Broker, free_port, start_broker, stop_broker

pytestmark = pytest.mark.integration


class PersistentSubscriber:
    """A QoS 1 subscriber with a persistent session: the broker keeps its messages while it is
    away (and, with broker persistence, across a broker restart)."""

    def __init__(self, port: int, client_id: str) -> None:
        self.seqs: list[int] = []
        self.health: list[bytes] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = lambda c, *_: c.subscribe("har/+/prediction", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seqs.append(json.loads(msg.payload)["seq"])

    def wait_for_all(self, n: int, timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = set(self.seqs)
            if got >= set(range(n)):
                return got
            time.sleep(0.1)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_broker_outage_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    conf_dir = tmp_path / "broker"
    conf_dir.mkdir()
    # a broker that keeps sessions on disk across its restart
    broker = start_broker(conf_dir, port)
    conf = broker.config
    conf.write_text(
        conf.read_text().replace(
            "persistence false", f"persistence true\npersistence_location {conf_dir}/"
        )
    )
    stop_broker(broker)
    broker = start_broker_with(conf, port)
    sub = PersistentSubscriber(port, "outage-sub")
    stop = threading.Event()
    prof = profile_for(port, outbox=tmp_path / "outbox.db")
    agent = build_agent(prof, options=RunOptions(speed=40.0, loop=False), stop=stop)
    result: dict[str, Any] = {}
    th = threading.Thread(target=lambda: result.setdefault("stats", agent.run()))
    th.start()
    fwd = agent.publisher
    assert isinstance(fwd, OutboxPublisher)
    try:
        deadline = time.monotonic() + 60
        while len(sub.seqs) < 10 and time.monotonic() < deadline:  # streaming, not a sleep
            time.sleep(0.05)
        assert len(sub.seqs) >= 10
        stop_broker(broker)  # the broker goes away mid-stream ...
        before = fwd.stats()
        time.sleep(3.0)  # ... the agent keeps classifying and spooling ...
        during = fwd.stats()
        assert during.produced > before.produced and during.length > before.length
        broker = start_broker_with(conf, port)  # ... and comes back
        th.join(120)
        assert not th.is_alive()
        n = result["stats"].windows
        got = sub.wait_for_all(n, timeout=60)
        assert got >= set(range(n)), f"missing {sorted(set(range(n)) - got)[:10]}"
        db = sqlite3.connect(tmp_path / "outbox.db")
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        db.close()
    finally:
        stop.set()
        th.join(30)
        sub.close()
        stop_broker(broker)


def start_broker_with(conf: Path, port: int) -> Broker:
    import shutil

    from tests.conftest import wait_for_port

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port)
    return Broker("127.0.0.1", port, proc, conf)


def _counter(outbox: Path, name: str) -> int:
    db = sqlite3.connect(outbox)
    try:
        row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        db.close()


def test_sigkill_and_restart_delivers_every_committed_message(
    tmp_path: Path, broker: Broker
) -> None:
    """Kill the agent at several points of its stream; after each restart the backlog goes
    out. Judged by what a subscriber received, not by the outbox's own counters alone."""
    outbox = tmp_path / "outbox.db"
    sub = SeqSubscriber(broker.port, "crash-sub")
    prof = tmp_path / "p.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    text = text.replace('"../', f'"{ROOT}/').replace("port = 1883", f"port = {broker.port}")
    text = text.replace('host = "localhost"', 'host = "127.0.0.1"').replace(
        "speed = 1.0", "speed = 25.0"
    )
    text += f'\n[outbox]\npath = "{outbox}"\n'
    prof.write_text(text)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "agent", "run", "--profile", str(prof)]
    try:
        for extra_s in (0.0, 0.7, 1.5):  # the kill lands at different points of the stream
            before = _counter(outbox, "produced")
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
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
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
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
        sub.close()


def test_broker_refusal_goes_to_dead_letter_once(tmp_path: Path) -> None:
    """An ACL that forbids the prediction topic: MQTT v5 PUBACK 0x87, no retry storm."""
    port = free_port()
    acl = tmp_path / "acl"
    acl.write_text(
        "topic readwrite har/+/status\ntopic readwrite har/+/cmd\n"
        "topic readwrite har/+/cmd/response\ntopic readwrite homeassistant/#\n"
    )
    conf = tmp_path / "mosquitto.conf"
    # mosquitto started as root drops to its own user before reading the ACL: stay root here
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nacl_file {acl}\n"
        "user root\n"
    )
    broker = start_broker_with(conf, port)
    try:
        prof = profile_for(port, outbox=tmp_path / "outbox.db")
        agent = build_agent(prof, options=RunOptions(speed=0, loop=False))
        stats = agent.run()
        db = sqlite3.connect(tmp_path / "outbox.db")
        dead = db.execute("SELECT COUNT(*), MIN(reason) FROM dead_letter").fetchone()
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        db.close()
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
    th = threading.Thread(target=agent.run)
    th.start()
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
