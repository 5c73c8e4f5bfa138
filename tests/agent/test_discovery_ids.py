"""Device id -> Home Assistant node id (agent.discovery.node_id): injective, in Home Assistant's
``[a-zA-Z0-9_-]``, and the node ids, unique_ids and entity ids of ids without ``_`` and ``.``
what they always were. ``ux-14``, ``ux_14`` and ``ux.14`` once all became ``har_ux_14``, so Home
Assistant merged such devices into one and one replay's end removed the others' configs."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agent.discovery import discovery_messages, node_id
from agent.payload import Topics
from agent.profile import _DEVICE_ID

if TYPE_CHECKING:
    from tests.conftest import Broker

OBJECTS = ("activity", "confidence", "configuration", "latency")
HA_ID = re.compile(r"[a-zA-Z0-9_-]+")  # node_id and object_id in a discovery topic
HA_ENTITY_ID = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")


def _configs(device: str) -> list[tuple[str, dict[str, Any]]]:
    return [(t, json.loads(p)) for t, p in discovery_messages(Topics("har", device))]


def _old_node(device: str) -> str:
    """The node id of every version before this rule."""
    return "har_" + device.replace(".", "_").replace("-", "_")


def _decode(node: str) -> str:
    """The device id back from its node id, one code at a time from the left: that this works
    for every id is what makes node_id injective."""
    assert node.startswith("har_")
    out, rest = [], node[4:]
    while rest:
        if rest[0] == "-":
            out.append({"-": "_", "_": "."}[rest[1]])
            rest = rest[2:]
        else:
            out.append("-" if rest[0] == "_" else rest[0])
            rest = rest[1:]
    return "".join(out)


@pytest.mark.parametrize(
    ("device", "node", "entity"),
    [
        # letters, digits and "-": as in every earlier version
        ("demo", "har_demo", "har_demo"),
        ("har-agent", "har_har_agent", "har_har_agent"),
        ("kitchen-pi", "har_kitchen_pi", "har_kitchen_pi"),
        ("pi-4", "har_pi_4", "har_pi_4"),
        ("ux-14", "har_ux_14", "har_ux_14"),
        ("a--b", "har_a__b", "har_a_b"),
        ("7", "har_7", "har_7"),
        # capitals kept in the node id (as before); entity ids are lower case
        ("UX-15", "har_UX_15", "har_ux_15"),
        ("ux-15", "har_ux_15", "har_ux_15"),
        ("Pi4", "har_Pi4", "har_pi4"),
        # "_" and "." have codes of their own
        ("ux_14", "har_ux--14", "har_ux_14"),
        ("ux.14", "har_ux-_14", "har_ux_14"),
        ("kitchen_pi", "har_kitchen--pi", "har_kitchen_pi"),
        ("pi-4.kitchen", "har_pi_4-_kitchen", "har_pi_4_kitchen"),
        ("a_-b", "har_a--_b", "har_a_b"),
        ("a-_b", "har_a_--b", "har_a_b"),
        ("a._b", "har_a-_--b", "har_a_b"),
        ("X_", "har_X--", "har_x"),
        ("x.", "har_x-_", "har_x"),
        ("x-", "har_x_", "har_x"),
    ],
)
def test_node_ids(device: str, node: str, entity: str) -> None:
    assert _DEVICE_ID.fullmatch(device)
    assert node_id(device) == node
    configs = _configs(device)
    assert [t for t, _ in configs] == [f"homeassistant/sensor/{node}/{o}/config" for o in OBJECTS]
    for (_, c), o in zip(configs, OBJECTS, strict=True):
        assert c["unique_id"] == f"{node}_{o}"
        assert c["device"]["identifiers"] == [node]
        assert c["device"]["name"] == f"har-agent {device}"
        assert c["default_entity_id"] == f"sensor.{entity}_{o}"
        assert HA_ENTITY_ID.fullmatch(c["default_entity_id"])


def test_ids_that_once_collided_are_different_devices() -> None:
    """``ux-14``, ``ux_14`` and ``ux.14`` (and ``kitchen-pi`` / ``kitchen_pi``): no discovery
    topic, unique_id or device identifier in common, so Home Assistant keeps them apart and
    removing one's configs (a replay's end) leaves the others'."""
    for group in (("ux-14", "ux_14", "ux.14"), ("kitchen-pi", "kitchen_pi")):
        topics: list[set[str]] = []
        unique_ids: list[set[str]] = []
        identifiers: list[set[str]] = []
        for device in group:
            configs = _configs(device)
            topics.append({t for t, _ in configs})
            unique_ids.append({c["unique_id"] for _, c in configs})
            identifiers.append({i for _, c in configs for i in c["device"]["identifiers"]})
        for sets in (topics, unique_ids, identifiers):
            for a, b in itertools.combinations(sets, 2):
                assert not a & b, (group, a & b)
        assert len(set().union(*topics)) == 4 * len(group)


def test_ids_differing_only_in_case_get_distinct_unique_ids() -> None:
    """Two devices, two Home Assistant devices; the entity id both suggest is the same (valid,
    lower case): Home Assistant gives the second entity ``_2``."""
    upper, lower = _configs("UX-15"), _configs("ux-15")
    assert not {c["unique_id"] for _, c in upper} & {c["unique_id"] for _, c in lower}
    assert not {t for t, _ in upper} & {t for t, _ in lower}
    assert upper[0][1]["unique_id"] == "har_UX_15_activity"
    assert [c["default_entity_id"] for _, c in upper] == [c["default_entity_id"] for _, c in lower]


def _generated_ids() -> list[str]:
    """Every valid id of up to 4 characters over an alphabet of each kind the rule admits
    (``a``, ``A``, ``1``, ``_``, ``.``, ``-``), ids built from the escapes' own characters
    (``_``, ``-`` next to each other), and random ids of every length up to 64."""
    ids = {
        "".join(p)
        for n in range(1, 5)
        for p in itertools.product("aA1_.-", repeat=n)
        if p[0] not in "_.-"
    }
    rng = random.Random(20260314)
    chars = "abcxyzABCXYZ0189_.-"
    for _ in range(5000):
        n = rng.randint(1, 64)
        ids.add(rng.choice("aZ5") + "".join(rng.choice(chars) for _ in range(n - 1)))
    ids.update("a" + "".join(p) for p in itertools.product("_-.", repeat=6))
    valid = sorted(i for i in ids if _DEVICE_ID.fullmatch(i))
    assert len(valid) > 6000
    return valid


def test_the_mapping_is_injective_and_always_valid_for_home_assistant() -> None:
    seen_nodes: dict[str, str] = {}
    seen_unique: dict[str, str] = {}
    for device in _generated_ids():
        node = node_id(device)
        assert node.startswith("har_") and HA_ID.fullmatch(node), (device, node)
        assert _decode(node) == device
        assert seen_nodes.setdefault(node, device) == device, (device, seen_nodes[node], node)
        if not re.search(r"[_.]", device):  # unchanged from earlier versions
            assert node == _old_node(device), device
        for topic, config in _configs(device):
            prefix, component, node_part, object_part, config_part = topic.split("/")
            assert (prefix, component, config_part) == ("homeassistant", "sensor", "config")
            assert node_part == node and HA_ID.fullmatch(object_part)
            uid = config["unique_id"]
            assert seen_unique.setdefault(uid, device) == device, (device, seen_unique[uid], uid)
            assert HA_ENTITY_ID.fullmatch(config["default_entity_id"]), (device, config)
            # the entity id Home Assistant suggests is the one earlier versions suggested
            slug = re.sub("_+", "_", f"{_old_node(device)}_{object_part}".lower())
            assert config["default_entity_id"] == f"sensor.{slug}"


def test_node_id_refuses_what_no_device_id_holds() -> None:
    for bad in ("", "a/b", "a b", "a+", "a#", "é"):
        with pytest.raises(ValueError):
            node_id(bad)


def test_the_documented_node_ids_are_what_the_agent_uses() -> None:
    """docs/mqtt.md's table of examples (device id | node id | unique_id | default_entity_id)."""
    from tests.agent.helpers import ROOT

    docs = (ROOT / "docs" / "mqtt.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `(har_[^`]*)` \| `([^`]+)` \| `([^`]+)` \|$", docs, re.M)
    assert len(rows) >= 4, "docs/mqtt.md shows node id examples"
    for device, node, unique, entity in rows:
        assert node_id(device) == node
        activity = _configs(device)[0][1]
        assert (activity["unique_id"], activity["default_entity_id"]) == (unique, entity)


@pytest.mark.integration
def test_a_replay_ending_leaves_a_look_alike_devices_configs(
    broker: Broker, tmp_path: Path
) -> None:
    """A daemon's retained configs for ``dsc_<pid>`` stay on the broker when a replay as
    ``dsc-<pid>`` announces itself (``--homeassistant``) and removes its own at its end: once both
    were ``har_dsc_<pid>``, and the replay's end removed the daemon's device from Home Assistant."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from typer.testing import CliRunner

    from agent.cli import app
    from tests.agent.helpers import DEFAULT_PROFILE, RECORDINGS, ROOT, Subscriber

    daemon, replay = f"dsc_{os.getpid()}", f"dsc-{os.getpid()}"
    kept = discovery_messages(Topics("har", daemon))
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for topic, body in kept:  # as the daemon publishes them
            pub.publish(topic, body, qos=1, retain=True).wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()

    prof = tmp_path / "replay.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "{replay}"').replace(
        "port = 1883", f"port = {broker.port}"
    )
    text = text.replace('host = "localhost"', 'host = "127.0.0.1"')
    prof.write_text(text + f'\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n')
    watch = Subscriber(broker.port, "homeassistant/#")
    try:
        res = CliRunner().invoke(
            app,
            ["replay", str(RECORDINGS[0]), "--fast", "-p", str(prof), "--homeassistant"],
        )
        assert res.exit_code == 0, res.output
        watch.wait_for("/config", 4 + 8, timeout=20)  # the daemon's, retained; the replay's 8
    finally:
        watch.close()
    ours = {t for t, _ in discovery_messages(Topics("har", replay))}
    seen = [(t, p) for t, p, retained in watch.messages if not retained]
    assert {t for t, _ in seen} == ours and [p for _, p in seen][4:] == [b""] * 4

    left = Subscriber(broker.port, "homeassistant/#")
    try:
        left.wait_for("/config", 10**6, timeout=1.5)  # retained messages come at once
        held = {t: p for t, p, retained in left.messages if retained}
    finally:
        left.close()
    assert held == dict(kept)
