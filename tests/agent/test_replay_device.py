"""``replay`` next to a running agent: it claims the device id as ``run`` does, so a replay with a
running daemon's profile cannot overwrite the daemon's retained status, config and metrics; and a
replay announces itself to Home Assistant only when asked (``--homeassistant``), removing what it
announced when it ends."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.instance import DeviceInUse, claim_device
from tests.agent.helpers import DEFAULT_PROFILE, RECORDINGS, ROOT, Subscriber, one_line_error
from tests.conftest import Broker, closed_port

runner = CliRunner()
SMALL = "wc-w0.10-r032"


def _profile(tmp_path: Path, device: str, port: int) -> Path:
    """A copy of the default profile as ``device`` (unique per test process, so that no demo
    agent on this machine holds it), aimed at 127.0.0.1:``port``, its outbox in ``tmp_path``."""
    prof = tmp_path / f"{device}.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "{device}"').replace("port = 1883", f"port = {port}")
    text = text.replace('host = "localhost"', 'host = "127.0.0.1"')
    text += f'\n[outbox]\npath = "{tmp_path / f"outbox-{device}.db"}"\n'
    prof.write_text(text)
    return prof


def test_replay_refuses_a_device_a_running_agent_holds(tmp_path: Path) -> None:
    """One line naming the device and the way out (--device), before the broker is contacted:
    the port refuses connections, so a replay that went on would fail on that instead."""
    device = f"held-{os.getpid()}"
    held = claim_device(device)  # as a running `har-agent run` holds it
    assert held is not None
    try:
        with closed_port() as port:
            prof = _profile(tmp_path, device, port)
            res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "-p", str(prof)])
    finally:
        held.close()
    one_line_error(res, f"another har-agent is already running as device {device!r}")
    one_line_error(res, "replay as another device with --device ID")
    assert "cannot reach" not in res.stderr


def test_replay_without_mqtt_does_not_need_the_device(tmp_path: Path) -> None:
    """--no-mqtt publishes nothing to the broker, so it cannot disturb the agent: it runs."""
    device = f"held-nomqtt-{os.getpid()}"
    held = claim_device(device)
    assert held is not None
    try:
        with closed_port() as port:
            prof = _profile(tmp_path, device, port)
            res = runner.invoke(
                app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "-p", str(prof)]
            )
    finally:
        held.close()
    assert res.exit_code == 0, res.output
    assert f"har/{device}/prediction " in res.stdout


def test_replay_holds_the_device_while_it_runs(tmp_path: Path, monkeypatch: Any) -> None:
    """While a replay publishes as a device, `run` (or another replay) as that device is
    refused; the claim is released when the replay ends."""
    import agent.wiring
    from agent.errors import AgentError

    device = f"replaying-{os.getpid()}"
    seen: list[bool] = []

    class Probe:
        def run(self) -> Any:
            try:
                sock = claim_device(device)
            except DeviceInUse:
                seen.append(True)
            else:
                seen.append(False)
                if sock is not None:
                    sock.close()
            raise AgentError("probed")

    monkeypatch.setattr(agent.wiring, "build_agent", lambda *_, **__: Probe())
    with closed_port() as port:
        prof = _profile(tmp_path, device, port)
        res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "-p", str(prof)])
    one_line_error(res, "probed")
    assert seen == [True]
    after = claim_device(device)  # released
    assert after is not None
    after.close()


def _retained(port: int, topic: str) -> dict[str, bytes]:
    """What the broker holds retained under ``topic`` now (a fresh subscriber's first burst)."""
    sub = Subscriber(port, topic)
    try:
        sub.wait_for("", 10**6, timeout=1.5)  # retained messages come at once on subscribing
        with sub._lock:
            return {t: p for t, p, retained in sub.messages if retained}
    finally:
        sub.close()


@pytest.mark.integration
def test_replay_with_a_running_daemons_profile_leaves_the_daemon_alone(
    broker: Broker, tmp_path: Path
) -> None:
    """The reviewer's reproduction: `run -p P`, then `replay ... --fast -p P -m SMALL`. The
    replay used to publish as the daemon's device and leave `har/X/status offline` retained
    while the daemon ran on; now it is refused and publishes nothing. With --device it runs
    beside the daemon, on its own topics, and announces nothing to Home Assistant."""
    device = f"daemon-{os.getpid()}"
    prof = _profile(tmp_path, device, broker.port)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--profile", str(prof)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    watch = Subscriber(broker.port, "#")
    try:
        assert watch.wait_for(f"har/{device}/status", 1, timeout=60) == [b"online"]
        before = _retained(broker.port, "homeassistant/#")
        assert len(before) == 4  # the daemon's discovery configs

        replay = [sys.executable, "-m", "agent", "replay", str(RECORDINGS[0]), "--fast"]
        refused = subprocess.run(
            [*replay, "-p", str(prof), "-m", SMALL],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert refused.returncode == 1, refused.stderr
        errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("har-agent: error:")]
        assert len(errors) == 1 and f"device {device!r}" in errors[0], refused.stderr
        assert "--device ID" in errors[0] and "Traceback" not in refused.stderr

        other = f"{device}-replay"
        beside = subprocess.run(
            [*replay, "-p", str(prof), "-m", SMALL, "--device", other],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert beside.returncode == 0, beside.stderr
        assert daemon.poll() is None

        # nothing the daemon published retained was overwritten, by either replay
        held = _retained(broker.port, f"har/{device}/#")
        assert held[f"har/{device}/status"] == b"online"
        config = json.loads(held[f"har/{device}/config"])
        assert config["model"] != SMALL and config["reason"] == "start"
        assert _retained(broker.port, "homeassistant/#") == before
        # the replay beside it: its own topics, every window, no Home Assistant announcement
        theirs = [json.loads(p) for t, p, _ in watch.messages if t == f"har/{device}/prediction"]
        assert theirs and all(p["model"] != SMALL for p in theirs)
        mine = watch.on(f"har/{other}/prediction")
        assert len(mine) > 200 and all(json.loads(p)["model"] == SMALL for p in mine)
        node = "har_" + other.replace("-", "_")  # its discovery topics would name it so
        assert not [t for t, _, _ in watch.messages if node in t]
    finally:
        watch.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            _, err = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
    assert daemon.returncode == 0, err.decode()


@pytest.mark.integration
def test_replay_announces_to_home_assistant_only_when_asked(broker: Broker, tmp_path: Path) -> None:
    """--homeassistant: the four discovery configs while the replay runs, removed (empty
    retained payloads) when it ends, so the replay's device does not linger in Home Assistant.
    Without it, even with the profile's default `homeassistant.discovery = true`, nothing."""
    device = f"ha-{os.getpid()}"
    prof = _profile(tmp_path, device, broker.port)
    node = "har_" + device.replace("-", "_")
    args = ["replay", str(RECORDINGS[0]), "--fast", "-p", str(prof), "-m", SMALL]

    watch = Subscriber(broker.port, "homeassistant/#")
    try:
        plain = runner.invoke(app, args)
        assert plain.exit_code == 0, plain.output
        announced = runner.invoke(app, [*args, "--homeassistant"])
        assert announced.exit_code == 0, announced.output
        got = watch.wait_for("/config", 8, timeout=20)
    finally:
        watch.close()
    topics = [t for t, _, _ in watch.messages]
    assert all(f"/{node}/" in t for t in topics), topics
    configs = [p for p in got if p]
    assert len(configs) == 4 and all(json.loads(p)["device"]["name"] for p in configs)
    assert got[4:] == [b""] * 4  # each removed again, after the four
    assert sorted(topics[:4]) == sorted(topics[4:])
    assert _retained(broker.port, "homeassistant/#") == {}
    assert _retained(broker.port, f"har/{device}/status") == {f"har/{device}/status": b"offline"}
