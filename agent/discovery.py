"""Home Assistant MQTT discovery: retained configs that make the agent's activity, confidence,
active configuration and latency appear in Home Assistant by themselves.

Pure: builds (topic, payload) pairs. The pipeline publishes them retained when the agent connects
and again whenever Home Assistant announces itself on ``<prefix>/status`` with ``online``.
Availability is bound to the agent's retained ``online``/``offline`` status topic.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent import __version__
from agent.payload import Topics

HA_STATUS_SUFFIX = "status"


def ha_status_topic(discovery_prefix: str) -> str:
    return f"{discovery_prefix}/{HA_STATUS_SUFFIX}"


# How each character a device id may hold (agent.profile: letters, digits, "_", "." and "-")
# is written in a node id. Letters and digits stand for themselves; "-" became "_" in every
# earlier version, and still does, so ids without "_" and "." keep the node ids, unique_ids and
# Home Assistant devices they always had; the two characters that also used to become "_" get
# two-character codes that start with "-", which no other code contains.
_NODE_CODE = {"-": "_", "_": "--", ".": "-_"}


def node_id(device: str) -> str:
    """The Home Assistant node id for ``device``: its discovery topics'
    ``<prefix>/sensor/<node id>/<object>/config``, its ``identifiers`` and, with ``_<object>``,
    its ``unique_id``. ``har_`` and then, for each character of the device id: a letter or a
    digit as it is (capitals too), ``-`` as ``_``, ``_`` as ``--``, ``.`` as ``-_``
    (``kitchen-pi`` -> ``har_kitchen_pi``, ``kitchen_pi`` -> ``har_kitchen--pi``,
    ``pi-4.Kitchen`` -> ``har_pi_4-_Kitchen``).

    Only ``[a-zA-Z0-9_-]`` comes out, the characters Home Assistant allows in a node id and an
    object id. Injective, so two devices never share a node: the codes (``a``..``z``,
    ``A``..``Z``, ``0``..``9``, ``_``, ``--``, ``-_``) are a prefix code, none is the start of
    another (the one-character codes are not ``-``, the two two-character codes both start
    with ``-`` and differ in the second), so a node id is read back one code at a time, from the
    left, in exactly one way: a letter, a digit or ``_`` is one character of the id, a ``-``
    and the character after it another. Capitals are kept: ``UX-15`` and ``ux-15`` are two
    devices (MQTT topics are case-sensitive) and get two nodes, ``har_UX_15`` and
    ``har_ux_15``; only their ``default_entity_id`` (:func:`entity_slug`) is the same.
    """
    if not device:
        raise ValueError("a device id is never empty")
    out = []
    for c in device:
        if c in _NODE_CODE:
            out.append(_NODE_CODE[c])
        elif c.isascii() and c.isalnum():
            out.append(c)
        else:  # agent.profile admits no other character
            raise ValueError(f"device id {device!r}: {c!r} has no node id code")
    return "har_" + "".join(out)


def entity_slug(name: str) -> str:
    """``name`` as the object part of a Home Assistant entity id: lower case, each run of other
    characters than ``a-z`` and ``0-9`` one ``_``, none at either end (entity ids are
    ``[a-z0-9_]`` without ``__``). Lossy by design, unlike :func:`node_id`: it is only the id
    Home Assistant gives a new entity, and it adds ``_2`` itself where two would clash."""
    return re.sub("[^a-z0-9]+", "_", name.lower()).strip("_")


def discovery_messages(
    topics: Topics, discovery_prefix: str = "homeassistant", model_label: str = ""
) -> list[tuple[str, bytes]]:
    """The retained discovery configs for one agent, as (topic, JSON payload)."""
    node = node_id(topics.device)
    device = {
        "identifiers": [node],
        "name": f"har-agent {topics.device}",
        "manufacturer": "har-agent",
        "model": model_label or "activity recognition",
        "sw_version": __version__,
    }
    common: dict[str, Any] = {
        "state_topic": topics.prediction,
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    sensors: list[tuple[str, dict[str, Any]]] = [
        (
            "activity",
            {
                "name": "Activity",
                "icon": "mdi:run",
                "value_template": "{{ value_json.smoothed.label if value_json.smoothed "
                "else value_json.label }}",
                "json_attributes_topic": topics.prediction,
                "json_attributes_template": "{{ value_json.probs | tojson }}",
            },
        ),
        (
            "confidence",
            {
                "name": "Activity confidence",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                # the confidence of what "Activity" shows: the smoothed prediction's when
                # smoothing is on (smoothed is null when it is off)
                "value_template": "{{ ((value_json.smoothed.confidence if value_json.smoothed "
                "else value_json.confidence) * 100) | round(1) }}",
            },
        ),
        (
            "configuration",
            {
                "name": "Model configuration",
                "icon": "mdi:tune-variant",
                "entity_category": "diagnostic",
                "value_template": "{{ value_json.model }}",
            },
        ),
        (
            "latency",
            {
                "name": "Inference latency",
                "unit_of_measurement": "ms",
                "device_class": "duration",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "value_template": "{{ value_json.latency_ms }}",
            },
        ),
    ]
    out = []
    for object_id, extra in sensors:
        config = {
            **common,
            **extra,
            # one per device and sensor: the node is injective, and no "_<object>" ends another
            "unique_id": f"{node}_{object_id}",
            # the entity id Home Assistant gives a new entity (the user may rename it); it
            # replaced "object_id", deprecated in 2025.10 and no longer honoured from 2026.4
            # (from the device id, not the node id: the same as before node ids were injective)
            "default_entity_id": "sensor." + entity_slug(f"har_{topics.device}_{object_id}"),
        }
        topic = f"{discovery_prefix}/sensor/{node}/{object_id}/config"
        out.append((topic, json.dumps(config, sort_keys=True).encode("utf-8")))
    return out
