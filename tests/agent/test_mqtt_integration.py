"""The agent against a real mosquitto, checked by a real subscriber."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.errors import PublishError
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import (
    PAYLOAD_FIELDS,
    RECORDINGS,
    ROOT,
    Subscriber,
    default_entry,
    profile_for,
    reference_predictions,
)
from tests.conftest import Broker, closed_port, free_port, start_broker, stop_broker

pytestmark = pytest.mark.integration

REQUIRED = PAYLOAD_FIELDS


def test_every_window_arrives_once_in_order(broker: Broker) -> None:
    sub = Subscriber(broker.port)
    try:
        recording = RECORDINGS[0]
        agent = build_agent(
            profile_for(broker.port), options=RunOptions(recording=recording, speed=0, loop=False)
        )
        stats = agent.run()
        expected, _ = reference_predictions(recording, default_entry())
        got = sub.wait_for("/prediction", len(expected))
        preds = [json.loads(p) for p in got]
        assert len(preds) == len(expected) == stats.windows
        assert [p["seq"] for p in preds] == list(range(len(expected)))
        assert all(REQUIRED <= set(p) for p in preds)
        assert [p["label"] for p in preds] == [default_entry().labels[i] for i in expected]
        assert sub.wait_for("/status", 2)[:1] == [b"online"]
        assert sub.on("/status")[-1] == b"offline"
        # "offline" is the agent's last message: nothing arrived twice after the count was met
        assert len(sub.on("/prediction")) == len(expected)
    finally:
        sub.close()
    # the status is retained: a late subscriber learns the agent is offline
    late = Subscriber(broker.port, "har/demo/status")
    try:
        assert late.wait_for("/status", 1) == [b"offline"]
        assert late.messages[0][2] is True
    finally:
        late.close()


def test_unreachable_broker_fails_fast() -> None:
    with closed_port() as port:  # nothing listens there, and nothing can self-connect
        agent = build_agent(profile_for(port), options=RunOptions(speed=0, loop=False))
        match = f"cannot reach the MQTT broker at 127.0.0.1:{port}"
        with pytest.raises(PublishError, match=match):
            agent.run()


def test_reconnects_after_broker_restart(tmp_path: Path) -> None:
    broker = start_broker(tmp_path)
    port = broker.port
    stop = threading.Event()
    agent = build_agent(profile_for(port, loop=True), options=RunOptions(speed=20.0), stop=stop)
    result: dict[str, object] = {}
    th = threading.Thread(target=lambda: result.setdefault("stats", agent.run()))
    th.start()
    try:
        sub = Subscriber(port)
        assert len(sub.wait_for("/prediction", 3)) >= 3
        sub.close()
        stop_broker(broker)
        seq_at_stop = agent.pipeline.seq
        deadline = time.monotonic() + 30
        while agent.pipeline.seq <= seq_at_stop + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # the agent keeps classifying while the broker is away
        assert agent.pipeline.seq > seq_at_stop + 3
        broker = start_broker(tmp_path, port)
        sub = Subscriber(port)
        # after the reconnect (backoff starts at 1 s) predictions flow again, status is online
        fresh = sub.wait_for("/prediction", 5, timeout=30)
        assert len(fresh) >= 5
        assert b"online" in sub.wait_for("/status", 1)
        # the retained metrics come back with the link (the restarted broker kept nothing, and
        # the next 60 s tick is far off): the last snapshot is sent again on reconnect
        assert sub.wait_for("/metrics", 1, timeout=5)
        # and so does the retained configuration event: a late subscriber learns what runs
        config = sub.wait_for("/config", 1, timeout=5)
        assert config and json.loads(config[0])["model"]
        sub.close()
    finally:
        stop.set()
        th.join(30)
        stop_broker(broker)
    assert not th.is_alive()


def _agent_process(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    prof = tmp_path / "p.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    text = text.replace('path = "../recordings/', f'path = "{ROOT}/recordings/')
    text = text.replace('dir = "../models"', f'dir = "{ROOT}/models"')
    text += f'\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
    text = text.replace("port = 1883", f"port = {port}").replace(
        'host = "localhost"', 'host = "127.0.0.1"'
    )
    prof.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--profile", str(prof)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_status_goes_offline_on_stop_or_crash(broker: Broker, tmp_path: Path, how: str) -> None:
    sub = Subscriber(broker.port, "har/demo/status")
    proc = _agent_process(broker.port, tmp_path)
    try:
        assert sub.wait_for("/status", 1, timeout=30) == [b"online"]
        proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)
        if how == "SIGKILL":
            assert proc.returncode == -signal.SIGKILL  # the broker sends the last will
        else:
            assert proc.returncode == 0, err.decode()
            assert b"Traceback" not in err
        assert sub.wait_for("/status", 2, timeout=15)[-1] == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()


def _kill_network_thread(link: Any, port: int) -> None:
    """Make paho's network thread die (an exception in a callback, once) and wait until the
    agent has restarted it."""
    import paho.mqtt.client as mqtt_client

    original = link._inbox
    calls = {"n": 0}

    class Exploding:
        def put(self, *_: object) -> None:
            calls["n"] += 1
            link._inbox = original  # explode once
            raise RuntimeError("boom in a callback")

        def __getattr__(self, name: str) -> object:  # the rest of the inbox, as it is
            return getattr(original, name)

    link._inbox = Exploding()
    sender = mqtt_client.Client(callback_api_version=mqtt_client.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    sender.publish(link.topics.command, b'{"cmd": "ping"}', qos=1).wait_for_publish(5)
    sender.disconnect()
    sender.loop_stop()
    deadline = time.monotonic() + 10
    while link.network_restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls["n"] >= 1 and link.network_restarts >= 1
    link._inbox = original


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_network_thread_is_restarted(broker: Broker) -> None:
    """An exception inside a paho callback kills its network thread; the agent restarts it."""
    from agent.mqtt import MqttPublisher
    from agent.wiring import build_agent as _build

    stop = threading.Event()
    agent = _build(profile_for(broker.port, loop=True), options=RunOptions(speed=20.0), stop=stop)
    link = agent.publisher
    assert isinstance(link, MqttPublisher)
    sub = Subscriber(broker.port)
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        assert len(sub.wait_for("/prediction", 2)) >= 2
        _kill_network_thread(link, broker.port)
        before = len(sub.on("/prediction"))
        assert len(sub.wait_for("/prediction", before + 3, timeout=20)) >= before + 3
    finally:
        stop.set()
        thread.join(30)
        sub.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_network_thread_restarted_with_the_outbox(broker: Broker, tmp_path: Path) -> None:
    """The daemon's case: with the outbox in front, the link stays up after its network thread
    is restarted on a live session (review s14, A). It used to be marked down for good, since
    no ``connected`` event comes on a session that never dropped: the outbox stopped sending,
    and the stop sent no ``offline``, leaving retained ``online`` for a stopped agent."""
    from agent.forwarder import OutboxPublisher
    from agent.mqtt import MqttPublisher
    from agent.profile import with_device
    from agent.wiring import build_agent as _build

    prof = with_device(profile_for(broker.port, outbox=tmp_path / "o.db", loop=True), "s14-net")
    stop = threading.Event()
    agent = _build(prof, options=RunOptions(speed=20.0), stop=stop)
    forwarder = agent.publisher
    assert isinstance(forwarder, OutboxPublisher)
    link = forwarder.link
    assert isinstance(link, MqttPublisher)
    sub = Subscriber(broker.port)
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        assert len(sub.wait_for("/prediction", 2)) >= 2
        _kill_network_thread(link, broker.port)
        before = len(sub.on("/prediction"))
        assert len(sub.wait_for("/prediction", before + 5, timeout=20)) >= before + 5
        assert link.connected
        assert forwarder.stats().length <= forwarder.window
    finally:
        stop.set()
        thread.join(30)
        sub.close()
    assert not thread.is_alive()
    late = Subscriber(broker.port, "har/s14-net/status")
    try:
        assert late.wait_for("/status", 1, timeout=5)[-1:] == [b"offline"]
    finally:
        late.close()


def test_notify_ready_watchdog_and_stopping_from_a_real_agent(
    broker: Broker, tmp_path: Path
) -> None:
    """The daemon speaks systemd's notify protocol on $NOTIFY_SOCKET (a real datagram socket)."""
    import socket

    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(20)
    prof = tmp_path / "p.toml"
    text = (ROOT / "profiles" / "default.toml").read_text().replace('"../', f'"{ROOT}/')
    text = text.replace("port = 1883", f"port = {broker.port}")
    text += f'\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
    prof.write_text(text)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--profile", str(prof)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        got = [server.recv(512)]
        assert got[0].startswith(b"READY=1")
        pings = 0
        while pings < 3:
            msg = server.recv(512)
            pings += msg == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        while (msg := server.recv(512)) != b"STOPPING=1":
            pass
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()


@pytest.mark.parametrize(("password", "ok"), [("right", True), ("wrong", False)])
def test_credentials_file_against_a_password_protected_broker(
    tmp_path: Path, password: str, ok: bool
) -> None:
    import shutil

    from tests.conftest import wait_for_port

    port = free_port()
    pw = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(pw), "har", "right"], check=True, capture_output=True
    )
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
        "persistence false\nuser root\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port)
    try:
        creds = tmp_path / "mqtt-credentials.toml"
        creds.write_text(f'username = "har"\npassword = "{password}"\n')
        creds.chmod(0o600)
        prof = tmp_path / "p.toml"
        text = (ROOT / "profiles" / "default.toml").read_text().replace('"../', f'"{ROOT}/')
        text = text.replace("port = 1883", f'port = {port}\ncredentials_file = "{creds}"')
        text = text.replace("speed = 1.0", "speed = 0").replace("loop = true", "loop = false")
        text += f'\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        prof.write_text(text)
        # the daemon keeps spooling when the broker refuses it (test_reliability_tls_auth.py);
        # a replay has no outbox, so a refusal ends it with one line
        command = ["run"] if ok else ["replay", str(RECORDINGS[0]), "--fast"]
        run = subprocess.run(
            [sys.executable, "-m", "agent", *command, "--profile", str(prof)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:  # exit 0 alone is not enough: the daemon exits 0 after a refusal too
            assert run.returncode == 0, run.stderr
            assert "connected to the MQTT broker" in run.stderr and "refused" not in run.stderr
            from agent.outbox import Outbox

            box = Outbox(tmp_path / "outbox.db")
            try:
                st = box.stats(time.time())
                assert st.length == 0 and st.acked > 200 and st.acked == st.produced, st
            finally:
                box.close()
        else:
            assert run.returncode == 1
            errors = [ln for ln in run.stderr.splitlines() if ln.startswith("har-agent: error:")]
            assert len(errors) == 1 and "refused the connection" in errors[0]
            assert "Traceback" not in run.stderr
    finally:
        proc.terminate()
        proc.wait(10)
