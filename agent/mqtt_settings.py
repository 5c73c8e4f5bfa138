"""What the MQTT link is set up with: the settings a profile gives it, and the properties of its
MQTT v5 CONNECT."""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.credentials import Credentials

MAX_PACKET_BYTES = 16 * 1024
"""Maximum Packet Size sent in the MQTT v5 CONNECT: the broker delivers no larger packet, so a
huge message never reaches (the memory of) the agent. What it subscribes to is small: commands of
at most ``MAX_COMMAND_BYTES`` (4 KiB; up to here a larger one is still answered with the reason)
and Home Assistant's ``online``/``offline``; the rest leaves room for topic and properties. An
MQTT v3.1.1 CONNECT has no such field: there, paho reads any message whole, one at a time."""


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    keepalive_s: int = 30
    qos: int = 1
    connect_timeout_s: float = 10.0
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60
    max_queued: int = 10000
    tls: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    credentials: Credentials | None = None
    subscriptions: tuple[str, ...] = ()
    """Topics to subscribe to besides the command topic (on every connect)."""

    @property
    def address(self) -> str:
        """The broker as messages name it (:func:`broker_address`)."""
        return broker_address(self.host, self.port)


def broker_address(host: str, port: int) -> str:
    """``HOST:PORT`` for messages, an IPv6 address in brackets (``[::1]:1883``, as ``--broker``
    takes it): ``::1:1883`` does not say which part is the port."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_properties(protocol: MQTTProtocolVersion) -> Properties | None:
    """MQTT v5: Maximum Packet Size (paho keeps it for every reconnect); v3.1.1 has none."""
    if protocol != mqtt.MQTTv5:
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
    props.MaximumPacketSize = MAX_PACKET_BYTES
    return props
