"""Connecting the MQTT link: the first connection, waited for, and why a connection failed or
ended, in one line that says what to check (refused credentials, TLS, a broker that does not
answer, another client that took this client id). The wait ends early when the run's stop event
is set (Ctrl-C, SIGTERM): :class:`ConnectStopped`, a stop, not a broker error."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

from agent.errors import PublishError
from agent.mqtt_client import stop_network_thread
from agent.mqtt_settings import MqttSettings, connect_properties
from agent.mqtt_tls import tls_reason

log = logging.getLogger("agent.mqtt")

SESSION_TAKEN_OVER = 0x8E
"""MQTT v5 DISCONNECT reason: another connection took this client id."""


class UnsupportedProtocol(Exception):
    """The broker refused MQTT v5: connect again with v3.1.1."""


class ConnectStopped(Exception):
    """The stop event was set while the first connection was being made: the run is to end,
    cleanly, whatever the broker would have answered."""


_CREDENTIALS_HINT = "; check mqtt.credentials_file"
_REFUSAL_HINTS = {
    "bad user name or password": _CREDENTIALS_HINT,
    "not authorized": _CREDENTIALS_HINT,
    "bad username or password": _CREDENTIALS_HINT,
    "not authorised": _CREDENTIALS_HINT,
}


def refuses_v5(detail: str) -> bool:
    """Whether a refusal says the broker does not speak this protocol version."""
    return "protocol version" in detail.lower()


def disconnect_reason(flags: Any, rc: Any, client_id: str) -> str:
    """What paho's ``on_disconnect`` arguments mean, in words."""
    detail = str(rc)
    if getattr(rc, "value", None) == SESSION_TAKEN_OVER:
        detail = (
            f"session taken over: another client connected as {client_id!r}; "
            "is another agent running with this device id?"
        )
    elif not getattr(flags, "is_disconnect_packet_from_server", True) and rc.is_failure:
        # paho's code for a socket that closed without a DISCONNECT ("Unspecified error")
        detail = "connection closed without a DISCONNECT: broker stopped or network lost"
    return detail


def _join(client: mqtt.Client, s: MqttSettings) -> None:
    """Join paho's network thread, bounded (its 1 s select, a reconnect under way, its 1 s
    reconnect wait), without paho's ``loop_stop()`` race (:func:`stop_network_thread`)."""
    if not stop_network_thread(client, s.connect_timeout_s + 2.0):
        log.warning("the MQTT network thread did not end; leaving it")


def connect(
    client: mqtt.Client,
    s: MqttSettings,
    protocol: MQTTProtocolVersion,
    events: queue.SimpleQueue[tuple[str, str]],
    stop: threading.Event | None = None,
) -> None:
    """Connect ``client`` and wait for the broker's answer on ``events`` (what its callbacks
    put); paho's loop is left running. :class:`PublishError` naming the problem, or
    :class:`UnsupportedProtocol` when a v5 connection is refused for its version, or
    :class:`ConnectStopped` as soon as ``stop`` is set while waiting (it is looked at between
    the broker's events, every 50 ms; a TCP connect that hangs, to a host that does not answer,
    is not interrupted, but its failure then counts as the stop)."""
    where = f"MQTT broker at {s.address}"
    if stop is not None and stop.is_set():
        raise ConnectStopped
    while not events.empty():  # an earlier attempt's (a v5 refusal's closed connection): stale
        events.get_nowait()
    try:
        client.connect(
            s.host,
            s.port,
            keepalive=s.keepalive_s,
            properties=connect_properties(protocol),
        )
    except ssl.SSLError as exc:
        raise PublishError(f"TLS with the {where} failed ({tls_reason(exc)})") from exc
    except (OSError, ValueError) as exc:
        if stop is not None and stop.is_set():
            raise ConnectStopped from exc
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise PublishError(f"cannot reach the {where} ({reason})") from exc
    client.loop_start()
    deadline = time.monotonic() + s.connect_timeout_s
    while time.monotonic() < deadline:
        try:
            kind, detail = events.get(timeout=0.05)
        except queue.Empty:
            # (only while no answer waits: a connection made is used, and said goodbye to)
            if stop is not None and stop.is_set():
                # disconnect first: it wakes paho's thread out of its 1 s select (loop_stop
                # alone joins it only once that select times out)
                client.disconnect()
                _join(client, s)
                raise ConnectStopped from None
            continue
        if kind == "connected":
            log.info(
                "connected to the %s (MQTT %s)",
                where,
                "v5" if protocol == mqtt.MQTTv5 else "v3.1.1",
            )
            return
        if kind == "refused":
            _join(client, s)
            if refuses_v5(detail) and protocol == mqtt.MQTTv5:
                raise UnsupportedProtocol(detail)
            hint = _REFUSAL_HINTS.get(detail.lower(), "")
            raise PublishError(f"the {where} refused the connection ({detail}{hint})")
        if kind == "disconnected":
            # closed before any CONNACK: not an MQTT broker (another service on that port, an
            # MQTT-over-TLS port spoken to in plain TCP), or one that refuses v5 by hanging up
            client.disconnect()  # (ends paho's reconnect loop)
            _join(client, s)
            raise PublishError(
                f"{s.address} closed the connection before answering as an MQTT broker "
                "(check mqtt.port and mqtt.tls)"
            )
    _join(client, s)
    raise PublishError(f"the {where} did not answer within {s.connect_timeout_s:g} s")
