"""A retained message on the command topic is stale: the agent must not obey it, neither when it
connects nor on every reconnect (``on_connect`` subscribes again), while retained messages on its
other subscriptions (Home Assistant's ``homeassistant/status``) keep working. Against a real
mosquitto, over MQTT v5 (the broker is asked not to send them) and v3.1.1 (the agent drops what
comes with the retain flag)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings
from agent.payload import Topics
from agent.profile import with_device
from agent.publishers import Command
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import Subscriber, profile_for
from tests.conftest import Broker, free_port, start_broker_conf, stop_broker

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
HA_STATUS = "homeassistant/status"


def _device(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _persistent_broker(tmp: Path, port: int) -> Broker:
    """A mosquitto that keeps retained messages across its restart (as a real one would)."""
    body = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {tmp}/\n"
    )
    return start_broker_conf(tmp, port, body, name="retained")


def _sender(port: int) -> mqtt.Client:
    connected = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(DEADLINE_S), "the sender got no CONNACK"
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _retain(port: int, topic: str, payload: bytes) -> None:
    """Leave ``payload`` retained on ``topic`` (e.g. ``mosquitto_pub -r``)."""
    sender = _sender(port)
    try:
        sender.publish(topic, payload, qos=1, retain=True).wait_for_publish(DEADLINE_S)
    finally:
        _close(sender)


def _wait(cond: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _take_until_live(link: MqttPublisher, sender: mqtt.Client, tag: str) -> list[Command]:
    """Send a live (not retained) command now and then until the link hands one over; every
    message polled meanwhile. A retained one is delivered on subscription, before any later
    message on that subscription, so once a live one is here a retained one would be too."""
    topic = link.topics.command
    taken: list[Command] = []
    deadline = time.monotonic() + DEADLINE_S
    k = 0
    while time.monotonic() < deadline:
        sender.publish(topic, json.dumps({"cmd": "ping", "id": f"{tag}-{k}"}), qos=1)
        k += 1
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            taken += link.poll()
            if any(c.topic == topic and tag.encode() in c.payload for c in taken):
                return taken
            time.sleep(0.02)
    raise AssertionError(f"no live command reached the agent: {taken}")


def _link(port: int, device: str, protocol: int) -> MqttPublisher:
    settings = MqttSettings(
        host="127.0.0.1", port=port, client_id=f"har-agent-{device}", subscriptions=(HA_STATUS,)
    )
    link = MqttPublisher(settings, Topics("har", device))
    if protocol == mqtt.MQTTv311:  # (mosquitto speaks both: the v3.1.1 link, as on fallback)
        link.protocol = mqtt.MQTTv311
        link._client = link._make_client(mqtt.MQTTv311)
    return link


def _with_status(link: MqttPublisher, taken: list[Command]) -> list[Command]:
    """``taken`` and what the link hands over until Home Assistant's retained status is among
    them (or the deadline): it comes on a subscription of its own, which the broker may serve
    after the command topic's (seen on a loaded machine)."""
    _wait(lambda: bool(taken.extend(link.poll())) or Command(HA_STATUS, b"online") in taken)
    return taken


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "retained message on the command topic" in r.message
    ]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v3.1.1"])
def test_a_retained_command_is_not_obeyed_at_connect_nor_after_a_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: int
) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    port = free_port()
    broker = _persistent_broker(tmp_path, port)
    device = _device("retained")
    command_topic = f"har/{device}/cmd"
    stale = b'{"cmd":"force","model":"wc-w0.10-r032","id":"stale"}'
    _retain(port, command_topic, stale)
    _retain(port, HA_STATUS, b"online")  # Home Assistant's birth message, retained on purpose
    link = _link(port, device, protocol)
    sender = _sender(port)
    try:
        link.start()
        taken = _with_status(link, _take_until_live(link, sender, "live"))
        assert stale not in [c.payload for c in taken]
        # the legitimately retained status still comes
        assert Command(HA_STATUS, b"online") in taken
        if protocol == mqtt.MQTTv5:
            # the broker was asked not to send it (Retain Handling 2): nothing to drop
            assert link.retained_commands_dropped == 0
        else:
            assert link.retained_commands_dropped == 1
            [warning] = _warnings(caplog)
            assert command_topic in warning
            assert f"mosquitto_pub -r -n -t {command_topic}" in warning

        # the broker restarts (keeping its retained messages); the agent subscribes again
        _close(sender)
        stop_broker(broker)
        taken = []

        def connected(up: bool) -> bool:
            taken.extend(link.poll())
            return link.connected is up

        assert _wait(lambda: connected(False)), "the link did not notice"
        broker = _persistent_broker(tmp_path, port)
        assert _wait(lambda: connected(True)), "the link did not reconnect"
        sender = _sender(port)
        taken = _with_status(link, [*taken, *_take_until_live(link, sender, "again")])
        assert stale not in [c.payload for c in taken]
        assert Command(HA_STATUS, b"online") in taken  # sent again on the new subscription
        if protocol == mqtt.MQTTv311:
            assert link.retained_commands_dropped == 2
        assert len(_warnings(caplog)) == (0 if protocol == mqtt.MQTTv5 else 1)  # once per run
    finally:
        _close(sender)
        link.stop()
        stop_broker(broker)


def test_a_retained_message_on_another_subscription_is_not_dropped() -> None:
    """The retain flag drops messages on the command topic alone (paho's thread, no broker)."""
    link = _link(1, "unit-retained", mqtt.MQTTv5)
    for topic, payload in ((HA_STATUS, b"online"), (link.topics.command, b'{"cmd":"ping"}')):
        msg = mqtt.MQTTMessage(topic=topic.encode())
        msg.payload, msg.retain = payload, True
        link._on_message(link._client, None, msg)
    live = mqtt.MQTTMessage(topic=link.topics.command.encode())
    live.payload = b'{"cmd":"status"}'
    link._on_message(link._client, None, live)
    assert link._inbox.take(10) == [
        Command(HA_STATUS, b"online"),
        Command(link.topics.command, b'{"cmd":"status"}'),
    ]
    assert link.retained_commands_dropped == 1


def test_the_adaptive_agent_does_not_switch_on_a_retained_force(broker: Broker) -> None:
    """The review's case: ``mosquitto_pub -r -t har/DEV/cmd -m '{"cmd":"force",...}'``, then
    ``har-agent run --policy adaptive``: no ``override`` switch, no answer; a live force works."""
    device = _device("retained-force")
    stale_model, live_model = "wc-w0.10-r032", "wc-w0.50-r064"
    _retain(
        broker.port,
        f"har/{device}/cmd",
        json.dumps({"cmd": "force", "model": stale_model, "id": "stale"}).encode(),
    )
    sub = Subscriber(broker.port, f"har/{device}/#")
    stop = threading.Event()
    prof = with_device(profile_for(broker.port, loop=True), device)
    opts = RunOptions(speed=20.0, policy_mode="adaptive", monitor=False)
    agent = build_agent(prof, options=opts, stop=stop)
    th = threading.Thread(target=agent.run)
    th.start()
    sender = _sender(broker.port)

    def configs() -> list[dict[str, Any]]:
        return [json.loads(p) for p in sub.on("/config")]

    def replies() -> list[dict[str, Any]]:
        return [json.loads(p) for p in sub.on("/cmd/response")]

    try:
        assert len(sub.wait_for("/prediction", 5, timeout=DEADLINE_S)) >= 5
        live = {"cmd": "force", "model": live_model, "id": "live"}
        sender.publish(f"har/{device}/cmd", json.dumps(live), qos=1)
        assert _wait(lambda: any(r.get("id") == "live" for r in replies()))
        assert _wait(lambda: any(c["reason"] == "override" for c in configs()))
        overrides = [c["model"] for c in configs() if c["reason"] == "override"]
        assert overrides == [live_model], configs()
        assert [r for r in replies() if r.get("id") == "stale"] == []
        # the metrics count retained commands dropped on arrival: none, the v5 broker kept it
        sender.publish(f"har/{device}/cmd", json.dumps({"cmd": "metrics", "id": "m"}), qos=1)
        assert _wait(lambda: any(r.get("id") == "m" for r in replies()))
        (m,) = [r for r in replies() if r.get("id") == "m"]
        assert m["metrics"]["commands"]["retained_dropped"] == 0
    finally:
        _close(sender)
        stop.set()
        th.join(30)
        sub.close()
    assert not th.is_alive()
