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


def entity_slug(name: str) -> str:
    """``name`` as the object part of a Home Assistant entity id: lower case, no ``__`` (a
    device id may hold capitals, and ``_`` next to a ``-`` or ``.`` that became one)."""
    return re.sub("_+", "_", name.lower())


def discovery_messages(
    topics: Topics, discovery_prefix: str = "homeassistant", model_label: str = ""
) -> list[tuple[str, bytes]]:
    """The retained discovery configs for one agent, as (topic, JSON payload)."""
    node = "har_" + topics.device.replace(".", "_").replace("-", "_")
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
            "unique_id": f"{node}_{object_id}",
            # the entity id Home Assistant gives a new entity (the user may rename it); it
            # replaced "object_id", deprecated in 2025.10 and no longer honoured from 2026.4
            "default_entity_id": "sensor." + entity_slug(f"{node}_{object_id}"),
        }
        topic = f"{discovery_prefix}/sensor/{node}/{object_id}/config"
        out.append((topic, json.dumps(config, sort_keys=True).encode("utf-8")))
    return out
