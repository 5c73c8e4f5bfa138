"""``--broker HOST[:PORT]``: run and replay publish to another broker than the profile's."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError
from agent.profile import load_profile, with_broker
from tests.agent.helpers import DEFAULT_PROFILE, RECORDINGS, ROOT, Subscriber, one_line_error
from tests.conftest import start_broker, stop_broker

runner = CliRunner()


@pytest.mark.parametrize(
    ("spec", "host", "port"),
    [
        ("pi.local", "pi.local", 1883),
        ("pi.local:8883", "pi.local", 8883),
        ("10.0.0.2:1884", "10.0.0.2", 1884),
        ("[::1]:1885", "::1", 1885),
        ("[::1]", "::1", 1883),
        ("[fe80::1]:1", "fe80::1", 1),
    ],
)
def test_broker_spec_sets_host_and_port_and_keeps_the_rest(spec: str, host: str, port: int) -> None:
    prof = load_profile(DEFAULT_PROFILE)
    got = with_broker(prof, spec).mqtt
    assert (got.host, got.port) == (host, port)
    assert (got.qos, got.tls, got.topic_prefix) == (
        prof.mqtt.qos,
        prof.mqtt.tls,
        prof.mqtt.topic_prefix,
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("h:0", "the port must be a number between 1 and 65535"),
        ("h:x", "the port must be a number between 1 and 65535"),
        ("h:", "the port must be a number between 1 and 65535"),
        ("[::1", "write an IPv6 address in brackets: [ADDRESS] or [ADDRESS]:PORT"),
        ("[::1]x", "write an IPv6 address in brackets: [ADDRESS] or [ADDRESS]:PORT"),
        ("::1", "write an IPv6 address in brackets"),
        ("::1:1884", "write an IPv6 address in brackets"),
        ("[pi.local]:1883", "brackets are for IPv6 addresses only"),
        ("[::1]:", "the port must be a number between 1 and 65535"),
        ("localhost:²", "the port must be a number between 1 and 65535"),
        ("localhost:١٢٣", "the port must be a number between 1 and 65535"),
        ("tcp://host", "HOST[:PORT], not a URL"),
        ("", "the host must not be empty"),
        ("a b:1883", "is not a host name or IP address"),
    ],
)
def test_bad_broker_specs_are_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        with_broker(load_profile(DEFAULT_PROFILE), spec)
    assert str(exc.value).startswith(f"--broker {spec!r}: ") and fragment in str(exc.value)
    result = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "--broker", spec])
    one_line_error(result, fragment)


def test_replay_publishes_to_the_broker_named(tmp_path: Path) -> None:
    """The default profile names localhost:1883; --broker sends the replay elsewhere."""
    broker = start_broker(tmp_path)
    try:
        sub = Subscriber(broker.port, "har/broker-opt/#")
        args = ["replay", str(RECORDINGS[0]), "--fast", "--device", "broker-opt"]
        result = runner.invoke(app, [*args, "--broker", f"127.0.0.1:{broker.port}"])
        assert result.exit_code == 0, result.output
        assert len(sub.wait_for("/prediction", 257)) == 257
        sub.client.disconnect()
    finally:
        stop_broker(broker)


def test_broker_with_no_mqtt_is_refused() -> None:
    result = runner.invoke(
        app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--broker", "localhost"]
    )
    one_line_error(result, "--broker names a broker; --no-mqtt publishes to none: use one")


def test_run_publishes_to_the_broker_named(tmp_path: Path) -> None:
    """The daemon with --broker: its predictions reach that broker, not the profile's."""
    broker = start_broker(tmp_path)
    device = f"broker-run-{os.getpid()}"
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(
        text.replace('id = "demo"', f'id = "{device}"').replace("speed = 1.0", "speed = 20.0")
    )
    proc = None
    try:
        sub = Subscriber(broker.port, f"har/{device}/#")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                "-p",
                str(prof),
                "--broker",
                f"127.0.0.1:{broker.port}",
            ],
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        assert len(sub.wait_for("/prediction", 3, timeout=60)) >= 3
        sub.client.disconnect()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        stop_broker(broker)
    assert proc.returncode == 0  # after the clean-up, so that it hides no earlier failure


def test_another_broker_gets_an_outbox_of_its_own() -> None:
    """A backlog queued for the profile's broker is never drained into another one (and the
    reverse): --broker with another host or port keeps its own default outbox file."""
    from agent.publisher_factory import outbox_path

    env = {"XDG_STATE_HOME": "/state"}
    prof = load_profile(DEFAULT_PROFILE)
    own = outbox_path(prof, env)
    assert own.name == "outbox-demo.db"
    same = with_broker(prof, f"{prof.mqtt.host}:{prof.mqtt.port}")
    assert outbox_path(same, env) == own
    assert outbox_path(with_broker(prof, "pi.local"), env).name == "outbox-demo@pi.local_1883.db"
    assert outbox_path(with_broker(prof, "[::1]:1884"), env).name == "outbox-demo@__1_1884.db"
    assert outbox_path(with_broker(prof, "pi.local"), env).parent == own.parent
