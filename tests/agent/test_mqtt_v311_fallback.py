"""The link's fallback from MQTT v5 to v3.1.1 (agent/mqtt.py, agent/mqtt_connect.py) against a real
broker that speaks v3.1.1 only: aedes (Node.js; tests/brokers/aedes/, pinned by its lock file).

mosquitto 2.0 cannot be told to refuse v5. aedes answers a v5 CONNECT as MQTT 3.1.1 says
[MQTT-3.1.2-2]: CONNACK with return code 1, "unacceptable protocol version", then it closes the
connection; paho 2.x reports that to a v5 client as reason code 132 "Unsupported protocol
version", which is what the agent's fallback looks for. (Two other real v3.1.1-only brokers were
tried and do not answer so: amqtt 0.12.1 misreads a v5 CONNECT that carries a will or properties,
as the agent's does, and never answers; rumqttd's v4 listener closes the connection without a
CONNACK.) And where no fallback may happen: after a working v5 session (with mosquitto), a
broker that now refuses v5 leaves the link on v5 and the outbox untouched.

aedes is installed with ``npm ci --prefer-offline`` from the lock file into build/aedes on first
use (npm's cache is enough, no network needed then), bounded to ``NPM_TIMEOUT_S`` (180 s; then
npm is killed). The aedes tests skip where Node.js or npm are missing, or where npm cannot reach
its registry (no network and not in its cache, or it timed out): the one-line reason says how to
install aedes by hand (copy tests/brokers/aedes/package*.json into build/aedes, then
``npm ci --prefix build/aedes``). Any other npm error fails them. Only a finished install counts
(a stamp in build/aedes); a failed or killed one is cleared and retried on the next run."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent.forwarder import OutboxPublisher
from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings
from agent.outbox import Outbox
from agent.payload import Topics
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import (
    RECORDINGS,
    ROOT,
    Subscriber,
    default_entry,
    profile_for,
    reference_predictions,
)
from tests.conftest import (
    Broker,
    closed_port,
    free_port,
    start_broker,
    stop_broker,
    wait_for_port,
)

integration = pytest.mark.integration
"""Every test here but the unit-level ones needs real brokers (mosquitto, aedes)."""

AEDES_SOURCE = ROOT / "tests" / "brokers" / "aedes"
AEDES_DIR = ROOT / "build" / "aedes"
FALLBACK_LINE = "the broker does not speak MQTT v5; using v3.1.1"
REFUSED_V5 = "connection refused: unacceptable protocol version"
"""What tests/brokers/aedes/broker.mjs logs when it refuses a v5 CONNECT."""


NPM_TIMEOUT_S = 180.0
"""At most this long for ``npm ci`` (then it is killed and the tests skip): a network that drops
packets would otherwise keep npm in its retries for many minutes."""
NPM_NETWORK_ERRORS = (
    "ENOTCACHED",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "ECONNRESET",
)
"""npm's error codes for a registry it cannot reach (ENOTCACHED: offline, and not in its cache)."""
INSTALL_HINT = (
    "install it with: mkdir -p build/aedes && cp tests/brokers/aedes/package*.json build/aedes/"
    " && npm ci --prefix build/aedes"
)
INSTALLED = ".installed"
"""Written in the install folder after ``npm ci`` succeeded: the lock file's SHA-256. Only this
says aedes is installed: a killed or failed npm leaves node_modules half-filled."""
REQUIRE_ENV = "HAR_AGENT_REQUIRE_AEDES"
"""Set to 1 (scripts/test.sh, so CI) to fail instead of skip when aedes cannot be had."""
_npm_skip: list[str] = []
"""Why installing into AEDES_DIR was skipped, once per session (each test would wait again)."""


def _cannot_have_aedes(reason: str) -> NoReturn:
    """Skip, or fail where the suite must run these tests (:data:`REQUIRE_ENV`)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: these tests must run here)")
    pytest.skip(reason)


def aedes_dir() -> Path:
    """build/aedes with aedes installed from the pinned lock file (:func:`install_aedes`, once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _cannot_have_aedes("Node.js and npm are needed for aedes, the MQTT v3.1.1-only test broker")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 20:
        _cannot_have_aedes(f"aedes 1.2 needs Node.js 20 or newer (this node is {version or '?'})")
    if _npm_skip:
        _cannot_have_aedes(_npm_skip[0])
    AEDES_DIR.mkdir(parents=True, exist_ok=True)
    with open(AEDES_DIR / ".install.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one install at a time
        try:
            install_aedes(npm, AEDES_DIR)
        except pytest.skip.Exception as exc:
            _npm_skip.append(str(exc))
            raise
        shutil.copyfile(AEDES_SOURCE / "broker.mjs", AEDES_DIR / "broker.mjs")
    return AEDES_DIR


def install_aedes(npm: str, where: Path, timeout_s: float | None = None) -> None:
    """``npm ci`` of tests/brokers/aedes into ``where``, unless done already for this lock file.
    npm takes what its cache holds without asking the registry (``--prefer-offline``), retries a
    fetch once and runs at most ``timeout_s`` (then it is killed, with whatever it started).
    Skips the test when the registry cannot be reached (or npm timed out), saying how to install
    aedes by hand; fails on any other npm error. A failed install leaves no node_modules, and no
    :data:`INSTALLED` stamp, so the next run installs again from scratch."""
    timeout_s = NPM_TIMEOUT_S if timeout_s is None else timeout_s
    lock = (AEDES_SOURCE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    stamp = where / INSTALLED
    if stamp.exists() and stamp.read_text() == digest:
        return
    stamp.unlink(missing_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(AEDES_SOURCE / name, where / name)
    options = "--prefer-offline --fetch-retries=1 --fetch-retry-mintimeout=1000"
    options += " --fetch-retry-maxtimeout=5000 --fetch-timeout=60000 --update-notifier=false"
    log_path = where / "npm-ci.log"
    with open(log_path, "wb") as out:
        npm_ci = subprocess.Popen(
            [npm, "ci", *options.split(), "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=where,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        try:
            rc: int | None = npm_ci.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(npm_ci.pid, signal.SIGKILL)
            npm_ci.wait()
            rc = None
    if rc == 0:
        stamp.write_text(digest)
        return
    shutil.rmtree(where / "node_modules", ignore_errors=True)
    output = log_path.read_text(errors="replace")
    what = "aedes, the MQTT v3.1.1-only test broker, is not installed"
    if rc is None:
        _cannot_have_aedes(
            f"{what}: npm ci did not finish in {timeout_s:g} s (no network?); {INSTALL_HINT}"
        )
    # npm's own verdict (its last "code E..." line), not any code its log happens to mention
    codes = re.findall(r"npm (?:ERR!|error) code (E[A-Z_]+)", output)
    if codes and codes[-1] in NPM_NETWORK_ERRORS:
        _cannot_have_aedes(f"{what}: npm cannot reach its registry ({codes[-1]}); {INSTALL_HINT}")
    pytest.fail(f"npm ci of the aedes test broker failed (exit {rc}):\n{output[-2000:]}")


def start_aedes(tmp: Path, port: int | None = None) -> Broker:
    """aedes (MQTT 3.1/3.1.1 only, anonymous, in memory) on a free (or the given) loopback
    port, logging into ``tmp``."""
    where = aedes_dir()
    port = port or free_port()
    node = shutil.which("node")
    assert node is not None
    with open(tmp / f"aedes-{port}.log", "ab") as log_file:
        proc = subprocess.Popen(
            [node, "broker.mjs", str(port)], cwd=where, stdout=log_file, stderr=log_file
        )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise
    return Broker("127.0.0.1", port, proc, where / "broker.mjs")


def broker_log(tmp: Path, port: int) -> str:
    return (tmp / f"aedes-{port}.log").read_text()


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


@integration
def test_a_v5_connect_is_refused_and_v311_accepted(tmp_path: Path) -> None:
    """The broker itself, seen by plain paho clients: what the agent's fallback relies on."""
    broker = start_aedes(tmp_path)
    try:
        got: list[tuple[int, str]] = []
        v5 = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        v5.on_connect = lambda _c, _u, _f, rc, _p: got.append((rc.value, str(rc)))
        v5.connect(broker.host, broker.port)
        v5.loop_start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        v5.disconnect()
        v5.loop_stop()
        assert got[:1] == [(132, "Unsupported protocol version")]
        sub = Subscriber(broker.port)  # paho's default protocol: MQTT v3.1.1
        sub.close()
    finally:
        stop_broker(broker)
    assert REFUSED_V5 in broker_log(tmp_path, broker.port)


@integration
def test_replay_falls_back_to_v311_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At start (``start``): refused as v5, the link connects again with v3.1.1 and every
    prediction of a replay reaches a v3.1.1 subscriber once, in order, acknowledged."""
    caplog.set_level(logging.INFO, logger="agent")
    broker = start_aedes(tmp_path)
    sub = Subscriber(broker.port)
    try:
        recording = RECORDINGS[0]
        agent = build_agent(
            profile_for(broker.port), options=RunOptions(recording=recording, speed=0, loop=False)
        )
        stats = agent.run()
        link = agent.publisher
        assert isinstance(link, MqttPublisher)
        assert link.protocol == mqtt.MQTTv311
        expected, _ = reference_predictions(recording, default_entry())
        preds = [json.loads(p) for p in sub.wait_for("/prediction", len(expected))]
        assert len(preds) == len(expected) == stats.windows
        assert [p["seq"] for p in preds] == list(range(len(expected)))
        assert [p["label"] for p in preds] == [default_entry().labels[i] for i in expected]
        assert sub.wait_for("/status", 2)[:1] == [b"online"]
        assert sub.on("/status")[-1] == b"offline"  # sent and acknowledged before the goodbye
    finally:
        sub.close()
        stop_broker(broker)
    logged = messages(caplog)
    assert FALLBACK_LINE in logged
    assert f"connected to the MQTT broker at 127.0.0.1:{broker.port} (MQTT v3.1.1)" in logged
    assert REFUSED_V5 in broker_log(tmp_path, broker.port)


@integration
def test_daemon_falls_back_when_the_broker_comes_up_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon starts with no broker (the outbox in front); the broker that comes up later
    refuses v5 (``poll_events``): the link goes on with v3.1.1, the outbox delivers what waited
    on disk, predictions flow, a command is answered, and what was published while the link was
    down (the retained config) is delivered too."""
    caplog.set_level(logging.INFO, logger="agent")
    stop = threading.Event()
    prof = profile_for(None, outbox=tmp_path / "outbox.db", loop=True)
    broker: Broker | None = None
    sub: Subscriber | None = None
    with closed_port() as port:  # nothing there while the agent starts
        mqtt_conf = dataclasses.replace(
            prof.mqtt, host="127.0.0.1", port=port, reconnect_min_s=1, reconnect_max_s=1
        )
        agent = build_agent(
            dataclasses.replace(prof, mqtt=mqtt_conf), options=RunOptions(speed=20.0), stop=stop
        )
        fwd = agent.publisher
        assert isinstance(fwd, OutboxPublisher)
        link = fwd.link
        assert isinstance(link, MqttPublisher)
        th = threading.Thread(target=agent.run)
        th.start()
    try:
        deadline = time.monotonic() + 30
        while (link.start_failure is None or agent.pipeline.seq < 3) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert link.start_failure is not None and "cannot reach" in link.start_failure
        assert agent.pipeline.seq >= 3  # classified while the broker was away: on disk
        waiting = agent.pipeline.seq
        broker = start_aedes(tmp_path, port)
        sub = Subscriber(port)
        # what the outbox held is acknowledged by the v3.1.1 broker, and new ones flow
        deadline = time.monotonic() + 30
        while fwd.stats().acked < waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fwd.stats().acked >= waiting
        assert len(sub.wait_for("/prediction", 3, timeout=30)) >= 3
        assert link.protocol == mqtt.MQTTv311 and link.connected
        # a command on the agent's command topic is answered over v3.1.1
        sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        sender.connect("127.0.0.1", port)
        sender.loop_start()
        ping = b'{"cmd": "ping", "id": "v311"}'
        sender.publish(link.topics.command, ping, qos=1).wait_for_publish(5)
        sender.disconnect()
        sender.loop_stop()
        answers = [json.loads(p) for p in sub.wait_for("/cmd/response", 1, timeout=20)]
        assert {"ok": True, "cmd": "ping", "id": "v311"} in answers
        # the configuration event (retained, QoS 1) was published while the link was down, so
        # paho queued it on the v5 client that the fallback replaced: a late subscriber gets it
        late = Subscriber(port, link.topics.config)
        try:
            config = late.wait_for("/config", 1, timeout=10)
            assert config and json.loads(config[0])["model"]
        finally:
            late.close()
    finally:
        stop.set()
        th.join(30)
        if sub is not None:
            sub.close()
        if broker is not None:
            stop_broker(broker)
    assert not th.is_alive()
    logged = messages(caplog)
    assert FALLBACK_LINE in logged
    assert f"connected to the MQTT broker at 127.0.0.1:{port} at last" in logged
    # every message of the link was acknowledged: none waited for a PUBACK that could not come
    assert not [m for m in logged if "not acknowledged" in m], logged
    assert REFUSED_V5 in broker_log(tmp_path, port)


def _rows(outbox: Path) -> list[int]:
    """The ``seq`` of every prediction still in the outbox file, oldest first."""
    db = sqlite3.connect(outbox)
    try:
        rows = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()
    return [json.loads(payload)["seq"] for (payload,) in rows]


@integration
def test_fallback_after_a_working_v5_session_delivers_every_prediction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's link (the outbox in front) works with MQTT v5 against mosquitto; mosquitto
    goes away with predictions in flight, and a v3.1.1-only broker (aedes) comes up on the same
    port. The link switches to a fresh v3.1.1 client, whose message ids start at 1 again: the
    forwarder hands it the rows that were in flight on the old client again, and the new
    client's PUBACKs settle only what it was given. Every prediction arrives, in order, and the
    outbox empties; the retained state is published again on the new broker."""
    caplog.set_level(logging.INFO, logger="agent")
    port = free_port()
    outbox = tmp_path / "outbox.db"
    topics = Topics("har", "v5-then-v311")
    settings = MqttSettings(
        "127.0.0.1",
        port,
        "v5-then-v311",
        connect_timeout_s=5,
        reconnect_min_s=1,
        reconnect_max_s=1,
    )

    def prediction(seq: int) -> bytes:
        return json.dumps({"seq": seq}).encode()

    mosquitto = start_broker(tmp_path, port)
    aedes: Broker | None = None
    sub: Subscriber | None = None
    stopped = False
    fwd = OutboxPublisher(Outbox(outbox), MqttPublisher(settings, topics, retry_in_background=True))
    link = fwd.link
    assert isinstance(link, MqttPublisher)
    try:
        fwd.start()
        assert link.connected and link.protocol == mqtt.MQTTv5
        # retained QoS 1 state besides the outbox, as the agent keeps (config, health, discovery)
        for name in ("config", "health", "discovery/a", "discovery/b"):
            fwd.publish(f"{topics.base}/{name}", b"{}", qos=1, retain=True)
        for seq in range(2):
            fwd.publish(topics.prediction, prediction(seq))
        assert link.flush(10.0) == 0 and fwd.flush(10.0) == 0
        assert fwd.stats().acked == 2
        # mosquitto freezes: these reach its socket, in flight, and are never acknowledged ...
        mosquitto.process.send_signal(signal.SIGSTOP)
        for seq in range(2, 7):
            fwd.publish(topics.prediction, prediction(seq))
        assert fwd.inflight == 5
        mosquitto.process.kill()  # ... and goes away
        mosquitto.process.wait()
        deadline = time.monotonic() + 10
        while link.connected and time.monotonic() < deadline:
            fwd.poll()
            time.sleep(0.02)
        assert not link.connected
        for seq in range(7, 10):  # while the link is down: on disk only
            fwd.publish(topics.prediction, prediction(seq))
        aedes = start_aedes(tmp_path, port)  # the broker is back, and speaks v3.1.1 only
        sub = Subscriber(port, f"{topics.base}/#")
        deadline = time.monotonic() + 30
        while not (link.connected and fwd.stats().length == 0) and time.monotonic() < deadline:
            fwd.poll()
            time.sleep(0.02)
        assert link.protocol == mqtt.MQTTv311 and link.connected and link.epoch == 1
        assert broker_log(tmp_path, port).count(REFUSED_V5) == 1  # one refusal, then v3.1.1
        stats = fwd.stats()
        assert (stats.acked, stats.dead, stats.length) == (10, 0, 0)
        got = [json.loads(p)["seq"] for p in sub.wait_for("/prediction", 8, timeout=10)]
        assert got == list(range(2, 10))  # the 5 in flight again, then the 3 from disk
        # the retained state, sent again on the new client: the new broker has it all
        retained = sub.wait_for("/discovery/b", 1, timeout=10)
        assert retained == [b"{}"] and sub.on("/config") == [b"{}"]
        assert sub.on("/status")[-1] == b"online"
        logged = messages(caplog)
        switched = [m for m in logged if "now refuses MQTT v5" in m]
        assert len(switched) == 1 and "switching the link to MQTT v3.1.1" in switched[0]
        assert "lost" not in switched[0]  # (the predictions were the outbox's, not the link's)
        assert any("5 messages in flight on the replaced MQTT client" in m for m in logged)
        stopped = True
        assert fwd.stop() == 0
        assert _rows(outbox) == []
    finally:
        if not stopped:
            fwd.stop()
        if sub is not None:
            sub.close()
        if mosquitto.process.poll() is None:
            mosquitto.process.kill()
            mosquitto.process.wait()
        if aedes is not None:
            stop_broker(aedes)


V5_REFUSED = "Unsupported protocol version"
"""How paho 2.x reports a v3.1.1 broker's CONNACK return code 1 to a v5 client."""


def _unit_link(max_queued: int = 10000) -> MqttPublisher:
    """A link that never touches a network unless it falls back (then to a closed port)."""
    return MqttPublisher(
        MqttSettings("127.0.0.1", 9, "unit", max_queued=max_queued),
        Topics("har", "unit"),
        retry_in_background=True,
    )


def test_a_v5_refusal_after_a_working_session_replaces_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unit level (connection events fed as paho's callbacks put them): after a working v5
    session, a broker that refuses v5 gets a fresh v3.1.1 client; the old client's mids are
    forgotten (PUBACKs received but not taken too: they would settle the new client's
    messages), ``epoch`` moves on, and a prediction the old client held unacknowledged is
    counted lost (a retained one is published again when the new client connects)."""
    caplog.set_level(logging.INFO, logger="agent")
    link = _unit_link()
    client = link._client
    try:
        for event in [("connected", "Success"), ("disconnected", "gone")]:
            link._events.put(event)
        link.poll_events()
        link.publish("har/unit/prediction", b"{}", qos=1)  # queued by paho: mid 1
        link.publish("har/unit/config", b"{}", qos=1, retain=True)  # mid 2
        link._acks.put((1, 0, "Success"))  # received, not yet taken by the forwarder
        link._acks.drain()
        link.publish("har/unit/prediction", b"{}", qos=1)  # mid 3, never acknowledged
        link._events.put(("refused", V5_REFUSED))
        link.poll_events()
        assert link.protocol == mqtt.MQTTv311 and link._client is not client
        assert link.epoch == 1 and link.take_acks() == []
        assert link._acks.pending == set() and link.abandoned == 1  # mid 3; mid 2 is retained
        warnings = [m for m in messages(caplog) if "now refuses MQTT v5" in m]
        assert len(warnings) == 1 and "1 messages in flight are lost" in warnings[0]
        assert FALLBACK_LINE not in messages(caplog)
        # a PUBACK the replaced client's thread delivers late is ignored
        link._on_publish(client, None, 4, ReasonCode(PacketTypes.PUBACK, "Success"), None)
        assert link.take_acks() == []
    finally:
        assert link.stop() == 1  # the abandoned prediction


def test_the_fallback_requeues_only_what_paho_took(caplog: pytest.LogCaptureFixture) -> None:
    """Unit level: a link that never connected falls back; of the retained QoS 1 messages
    queued again on the v3.1.1 client, one that paho refused (its queue full) is not waited
    for (its PUBACK can never come)."""
    caplog.set_level(logging.INFO, logger="agent")
    link = _unit_link(max_queued=1)
    try:
        link.publish("har/unit/config", b"{}", qos=1, retain=True)
        link.publish("har/unit/health", b"{}", qos=1, retain=True)  # paho's queue is full
        link._events.put(("refused", V5_REFUSED))
        link.poll_events()
        assert link.protocol == mqtt.MQTTv311
        assert FALLBACK_LINE in messages(caplog)
        assert link._acks.pending == {1}  # the config, mid 1 of the new client
    finally:
        link.stop()


def _offline_npm(monkeypatch: pytest.MonkeyPatch, tmp: Path, registry: str) -> Path:
    """npm pointed at ``registry`` with an empty cache, installing into a scratch AEDES_DIR."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for this check of the aedes install")
    monkeypatch.delenv(REQUIRE_ENV, raising=False)  # these check the skip itself
    monkeypatch.setenv("npm_config_registry", registry)
    monkeypatch.setenv("npm_config_cache", str(tmp / "empty-npm-cache"))
    monkeypatch.setattr(sys.modules[__name__], "_npm_skip", [])
    scratch = tmp / "aedes"
    monkeypatch.setattr(sys.modules[__name__], "AEDES_DIR", scratch)
    return scratch


def test_npm_offline_skips_with_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network and nothing in npm's cache (here: a registry that refuses connections): the
    aedes tests skip, saying how to install it, instead of failing the suite. A half-installed
    node_modules left before (aedes' package.json and the right lock file, what used to count
    as installed) is not taken as installed, and is cleared for the next try."""
    with closed_port() as port:
        scratch = _offline_npm(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
        (scratch / "node_modules" / "aedes").mkdir(parents=True)
        (scratch / "node_modules" / "aedes" / "package.json").write_text("{}")
        shutil.copyfile(AEDES_SOURCE / "package-lock.json", scratch / "package-lock.json")
        with pytest.raises(pytest.skip.Exception) as skipped:
            aedes_dir()
    reason = str(skipped.value)
    assert "ECONNREFUSED" in reason and "npm ci --prefix build/aedes" in reason, reason
    assert "\n" not in reason
    assert not (scratch / "node_modules").exists() and not (scratch / INSTALLED).exists()
    with pytest.raises(pytest.skip.Exception, match="ECONNREFUSED"):
        aedes_dir()  # the next aedes test skips at once, npm is not run again


def test_npm_that_hangs_is_killed_and_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry that takes connections and never answers (a network that drops packets):
    npm is killed after ``NPM_TIMEOUT_S`` with all it started, and the tests skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes the handshakes; nobody reads or answers
        port = silent.getsockname()[1]
        scratch = _offline_npm(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
        monkeypatch.setattr(sys.modules[__name__], "NPM_TIMEOUT_S", 3.0)
        started: list[subprocess.Popen[bytes]] = []
        popen = subprocess.Popen

        def spy(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
            started.append(popen(*args, **kwargs))  # type: ignore[call-overload]
            return started[-1]

        monkeypatch.setattr(subprocess, "Popen", spy)
        with pytest.raises(pytest.skip.Exception, match="did not finish in 3 s") as skipped:
            aedes_dir()
    assert "npm ci --prefix build/aedes" in str(skipped.value)
    (npm_ci,) = [proc for proc in started if "ci" in proc.args]  # (not node --version)
    with pytest.raises(ProcessLookupError):
        os.killpg(npm_ci.pid, 0)  # nothing of npm's process group is left
    assert not (scratch / "node_modules").exists() and not (scratch / INSTALLED).exists()


def test_where_the_suite_must_run_them_an_unreachable_registry_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/test.sh (so CI) sets HAR_AGENT_REQUIRE_AEDES=1: there, no aedes is a failure,
    not a skip that would leave the fallback untested."""
    with closed_port() as port:
        _offline_npm(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
        monkeypatch.setenv(REQUIRE_ENV, "1")
        with pytest.raises(pytest.fail.Exception, match="must run here"):
            aedes_dir()
