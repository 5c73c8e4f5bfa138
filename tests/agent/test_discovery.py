from __future__ import annotations

import json
import re
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
    # "object_id" is deprecated (Home Assistant 2025.10) and ignored from 2026.4
    assert all("object_id" not in c for c in configs)
    assert [c["default_entity_id"] for c in configs] == [
        f"sensor.har_pi_4_kitchen_{o}"
        for o in ("activity", "confidence", "configuration", "latency")
    ]
    assert configs[1]["unit_of_measurement"] == "%"
    assert configs[3]["device_class"] == "duration" and configs[3]["unit_of_measurement"] == "ms"


def test_default_entity_ids_are_valid_home_assistant_entity_ids() -> None:
    """Home Assistant's entity ids are lower case, without ``__`` (its ``valid_entity_id``)."""
    valid = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")
    for device in ("Pi-4.Kitchen", "a_-b", "X_", "demo"):
        for _, payload in discovery_messages(Topics("har", device)):
            config = json.loads(payload)
            assert valid.fullmatch(config["default_entity_id"]), config["default_entity_id"]
            assert "object_id" not in config
    ids = [json.loads(p)["default_entity_id"] for _, p in discovery_messages(Topics("har", "a_-B"))]
    assert ids[0] == "sensor.har_a_b_activity"


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


def test_the_documented_discovery_config_is_what_the_agent_publishes() -> None:
    """docs/mqtt.md shows the activity sensor's config: it must be the real one."""
    from tests.agent.helpers import ROOT

    docs = (ROOT / "docs" / "mqtt.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", docs, re.S)
    shown = [json.loads(b) for b in blocks if '"default_entity_id"' in b]
    assert len(shown) == 1, "docs/mqtt.md shows one discovery config"
    topic, payload = discovery_messages(Topics("har", "demo"), "homeassistant", "wc-w0.75-r096")[0]
    assert topic == "homeassistant/sensor/har_demo/activity/config"
    real = json.loads(payload)
    real["device"]["sw_version"] = shown[0]["device"]["sw_version"]  # (the docs do not follow it)
    assert shown[0] == real
