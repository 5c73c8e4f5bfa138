from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from agent.discovery import discovery_messages, ha_status_topic
from agent.payload import Topics

if TYPE_CHECKING:
    from tests.conftest import Broker


def test_discovery_configs() -> None:
    msgs = discovery_messages(Topics("har", "pi-4.kitchen"), "homeassistant", "cnn1d")
    topics = [t for t, _ in msgs]
    assert topics == [  # "-" as "_", "." as "-_" (agent.discovery.node_id)
        f"homeassistant/sensor/har_pi_4-_kitchen/{o}/config"
        for o in ("activity", "confidence", "configuration", "latency")
    ]
    configs = [json.loads(p) for _, p in msgs]
    for c in configs:
        assert c["state_topic"] == "har/pi-4.kitchen/prediction"
        assert c["availability_topic"] == "har/pi-4.kitchen/status"
        assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
        assert c["device"]["identifiers"] == ["har_pi_4-_kitchen"]
    assert [c["unique_id"] for c in configs] == [
        f"har_pi_4-_kitchen_{o}" for o in ("activity", "confidence", "configuration", "latency")
    ]
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
    from agent.manifest import load_manifest
    from agent.wiring import pick_model
    from tests.agent.helpers import MODELS

    default = pick_model(load_manifest(MODELS), "").id  # the member the default profile runs
    topic, payload = discovery_messages(Topics("har", "demo"), "homeassistant", default)[0]
    assert topic == "homeassistant/sensor/har_demo/activity/config"
    real = json.loads(payload)
    real["device"]["sw_version"] = shown[0]["device"]["sw_version"]  # (the docs do not follow it)
    assert shown[0] == real


def _published_predictions(smoothing: str) -> list[dict[str, Any]]:
    """What the agent publishes on its prediction topic for a bundled recording, with
    ``smoothing.method`` set to ``smoothing`` (the agent's own encoder, not a hand-made body)."""
    from agent.publishers import MemoryPublisher
    from agent.wiring import RunOptions, build_agent
    from tests.agent.helpers import RECORDINGS, profile_for

    prof = profile_for()
    prof = dataclasses.replace(
        prof, smoothing=dataclasses.replace(prof.smoothing, method=smoothing, window=5)
    )
    pub = MemoryPublisher()
    opts = RunOptions(recording=RECORDINGS[0], speed=0.0, loop=False, monitor=False)
    build_agent(prof, options=opts, publisher=pub).run()
    return [json.loads(p) for t, p, _, _ in pub.messages if t.endswith("/prediction")]


def _render(config: dict[str, Any], key: str, body: dict[str, Any]) -> str:
    """``config[key]``, a Home Assistant template, rendered as Home Assistant does for a
    message: the payload parsed as ``value_json`` (Jinja2, which Home Assistant's templates are;
    its ``round`` takes the same precision argument)."""
    import jinja2  # the test extra's (pyproject.toml): a missing one fails, it does not skip

    return str(jinja2.Environment().from_string(config[key]).render(value_json=body))


def _configs() -> dict[str, dict[str, Any]]:
    msgs = discovery_messages(Topics("har", "tmpl-check"))
    return {t.split("/")[-2]: json.loads(p) for t, p in msgs}


@pytest.mark.parametrize("smoothing", ["mean", "vote"])
def test_activity_and_its_confidence_read_the_same_prediction(smoothing: str) -> None:
    """With smoothing on, "Activity" shows the smoothed label: "Activity confidence" must be the
    smoothed confidence, not the raw window's (it was ``value_json.confidence``)."""
    configs = _configs()
    preds = _published_predictions(smoothing)
    assert preds and all(p["smoothed"] is not None for p in preds)
    # the recording has windows where the two differ, or the test could not tell them apart
    assert any(p["smoothed"]["confidence"] != p["confidence"] for p in preds)
    for p in preds:
        assert _render(configs["activity"], "value_template", p) == p["smoothed"]["label"]
        shown = float(_render(configs["confidence"], "value_template", p))
        assert shown == round(p["smoothed"]["confidence"] * 100, 1), p


def test_without_smoothing_the_confidence_is_the_raw_one() -> None:
    """``smoothed`` is null with ``smoothing.method = "none"``; a payload without the key (another
    publisher's, or an older schema) falls back the same way."""
    configs = _configs()
    preds = _published_predictions("none")
    assert preds and all(p["smoothed"] is None for p in preds)
    for p in [*preds[:20], *({k: v for k, v in p.items() if k != "smoothed"} for p in preds[:20])]:
        assert _render(configs["activity"], "value_template", p) == p["label"]
        shown = float(_render(configs["confidence"], "value_template", p))
        assert shown == round(p["confidence"] * 100, 1), p


def test_every_field_a_template_reads_is_in_the_prediction_payload() -> None:
    """Without Jinja2 too: each ``value_json.a.b`` path of every template exists in what the
    agent publishes with smoothing on (the default profile's ``mean``)."""
    preds = _published_predictions("mean")
    for name, config in _configs().items():
        for key in ("value_template", "json_attributes_template"):
            for path in re.findall(r"value_json((?:\.\w+)+)", config.get(key, "")):
                node: Any = preds[-1]
                for part in path.strip(".").split("."):
                    assert isinstance(node, dict) and part in node, (name, key, path)
                    node = node[part]
