import json

from agent.discovery import discovery_messages, ha_status_topic
from agent.payload import Topics


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
