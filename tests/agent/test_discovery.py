from __future__ import annotations

import json
from typing import TYPE_CHECKING

from agent.discovery import discovery_messages, ha_status_topic
from agent.payload import Topics

if TYPE_CHECKING:
    from tests.conftest import Broker


def test_discovery_configs() -> None:
    msgs = discovery_messages(Topics("har", "pi-4.kitchen"), "homeassistant", "cnn1d")
    topics = [t for t, _ in msgs]
    assert topics == [
        f"homeassistant/sensor/har_pi_4_kitchen/{o}/config"
        for o in ("activity", "confidence", "configuration", "latency")
    ]
    configs = [json.loads(p) for _, p in msgs]
    for c in configs:
        assert c["state_topic"] == "har/pi-4.kitchen/prediction"
        assert c["availability_topic"] == "har/pi-4.kitchen/status"
        assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
        assert c["device"]["identifiers"] == ["har_pi_4_kitchen"]
    assert len({c["unique_id"] for c in configs}) == 4
    assert configs[1]["unit_of_measurement"] == "%"
    assert configs[3]["device_class"] == "duration" and configs[3]["unit_of_measurement"] == "ms"


def test_ha_status_topic() -> None:
    assert ha_status_topic("homeassistant") == "homeassistant/status"


def test_configs_are_published_at_start_and_again_when_home_assistant_comes_online(
    broker: Broker,
) -> None:
    """Through a real mosquitto: four retained configs at start, four more each time Home
    Assistant announces 'online' on homeassistant/status (after its own restart)."""
    import threading

    from agent.wiring import RunOptions, build_agent
    from tests.agent.helpers import Subscriber, profile_for

    stop = threading.Event()
    agent = build_agent(
        profile_for(broker.port, loop=True), options=RunOptions(speed=20.0), stop=stop
    )
    th = threading.Thread(target=agent.run)
    th.start()
    sub = Subscriber(broker.port, "homeassistant/#")
    try:
        assert len(sub.wait_for("/config", 4, timeout=30)) == 4  # retained, from the start
        sub.client.publish("homeassistant/status", "online", qos=1)
        assert len(sub.wait_for("/config", 8, timeout=30)) == 8
        sub.client.publish("homeassistant/status", "offline", qos=1)
        assert len(sub.wait_for("/config", 9, timeout=3)) == 8  # 'offline' asks for nothing
    finally:
        sub.close()
        stop.set()
        th.join(30)
    assert not th.is_alive()
