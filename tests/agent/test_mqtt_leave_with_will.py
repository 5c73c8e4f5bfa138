"""``leave_with_will`` against a real broker (mosquitto), for both protocols the link speaks.

At stop, when the agent's own retained ``offline`` was not acknowledged, the link must end so that
the broker publishes the last will (``offline``): MQTT v5 with DISCONNECT reason 0x04, v3.1.1
(the fallback link) by closing the socket without a DISCONNECT. A plain DISCONNECT tells the
broker to discard the will: the control case shows the subscriber would then keep ``online``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from agent.mqtt_client import leave_with_will, make_client, stop_network_thread
from agent.mqtt_settings import MqttSettings
from tests.agent.helpers import Subscriber
from tests.conftest import Broker

pytestmark = pytest.mark.integration

PROTOCOLS = [pytest.param(mqtt.MQTTv5, id="v5"), pytest.param(mqtt.MQTTv311, id="v3.1.1")]


def _last_status(
    broker: Broker, protocol: MQTTProtocolVersion, end: Callable[[mqtt.Client], None]
) -> bytes:
    """Connect an agent-made client, say ``online`` (acknowledged), end the link with ``end``,
    and return the last status a subscriber holds a second later."""
    status = f"har/will-{protocol}/status"
    settings = MqttSettings("127.0.0.1", broker.port, f"har-agent-will-{protocol}")
    client = make_client(settings, status, protocol)
    connected = threading.Event()
    published = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.on_publish = lambda *_: published.set()
    sub = Subscriber(broker.port, status)
    try:
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        assert connected.wait(10)
        client.publish(status, "online", qos=1, retain=True)
        assert published.wait(10)
        assert sub.wait_for("/status", 1) == [b"online"]
        end(client)
        assert stop_network_thread(client, 5.0)
        deadline = time.monotonic() + 3.0  # mosquitto publishes a will at once
        while time.monotonic() < deadline and len(sub.on("/status")) < 2:
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing after it
        return sub.on("/status")[-1]
    finally:
        sub.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_leaving_with_the_will_makes_the_broker_publish_offline(
    broker: Broker, protocol: MQTTProtocolVersion
) -> None:
    assert _last_status(broker, protocol, lambda c: leave_with_will(c, protocol)) == b"offline"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_plain_disconnect_discards_the_will(
    broker: Broker, protocol: MQTTProtocolVersion
) -> None:
    # the control: what leave_with_will must not do
    assert _last_status(broker, protocol, lambda c: c.disconnect()) == b"online"
