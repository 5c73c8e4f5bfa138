"""The retained state the MQTT link keeps sending: the last retained payload and QoS per topic
(config, health, metrics, discovery). A broker that restarted without persistence has forgotten
them, paho drops QoS 0 messages published while the link is down, and a replaced client (the
v3.1.1 fallback) never sends what the old one queued: the link sends them again then."""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from agent.mqtt_acks import Acks


class RetainedState:
    def __init__(self) -> None:
        self._last: dict[str, tuple[bytes, int]] = {}

    def remember(self, topic: str, payload: bytes, qos: int) -> None:
        self._last[topic] = (payload, qos)

    def resend(self, client: mqtt.Client, keep: Callable[[int], bool]) -> None:
        """Publish again every message whose QoS ``keep`` accepts, unawaited (a reconnect)."""
        for topic, (payload, qos) in self._last.items():
            if keep(qos):
                client.publish(topic, payload, qos=qos, retain=True)

    def requeue(self, client: mqtt.Client, acks: Acks) -> None:
        """Queue the QoS > 0 messages on a new client not connected yet (paho drops the QoS 0
        ones until it is; they go out on connect), awaiting their PUBACKs in ``acks``; one that
        paho's full queue refuses is not awaited (its PUBACK can never come)."""
        for topic, (payload, qos) in self._last.items():
            if qos > 0:
                info = client.publish(topic, payload, qos=qos, retain=True)
                if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                    acks.pending.add(info.mid)
                    acks.retained.add(info.mid)
