"""The paho client of the MQTT link: made from the link's settings (last will, reconnect backoff,
queue size, credentials, TLS), its subscriptions, made again on every connect, the places where
the link reaches into what paho keeps private (its network thread, its wake-up socket pair), and
how it ends: :func:`leave_with_will`, :func:`stop_network_thread`.
The callbacks, and what they feed, are the link's (:class:`agent.mqtt.MqttPublisher`)."""

from __future__ import annotations

import socket
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.mqtt_settings import MqttSettings
from agent.mqtt_tls import tls_context


def make_client(s: MqttSettings, status_topic: str, protocol: MQTTProtocolVersion) -> mqtt.Client:
    """A paho client for ``protocol`` (VERSION2 callbacks, none set yet) whose last will sets
    ``status_topic`` ``offline``."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        protocol=protocol,
    )
    client.will_set(status_topic, payload="offline", qos=1, retain=True)
    client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
    client.max_queued_messages_set(s.max_queued)
    client.connect_timeout = s.connect_timeout_s
    if s.credentials is not None:
        client.username_pw_set(s.credentials.username, s.credentials.password)
    if s.tls:
        context = tls_context(s.ca_file, s.client_cert, s.client_key)
        client.tls_set_context(context)
    return client


def subscribe(
    client: mqtt.Client,
    command_topic: str,
    subscriptions: tuple[str, ...],
    protocol: MQTTProtocolVersion,
) -> None:
    """Subscribe to the command topic and the other ``subscriptions`` (from ``on_connect``)."""
    if protocol == mqtt.MQTTv5:
        # a retained command is stale: ask the broker not to send it (on_message drops it
        # too, for the v3.1.1 link, which has no subscription options)
        no_retained = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe(command_topic, options=no_retained)
    else:
        client.subscribe(command_topic, qos=1)
    for topic in subscriptions:
        client.subscribe(topic, qos=1)


def network_thread_alive(client: mqtt.Client) -> bool:
    """Whether paho's network thread runs (it dies if anything raises inside it)."""
    # paho keeps no public handle on its thread; it clears _thread when the thread ends
    thread = getattr(client, "_thread", None)
    return thread is not None and thread.is_alive()


def restart_network_thread(client: mqtt.Client) -> bool:
    """Start a new network thread in place of a dead one; whether paho still holds a session.

    A thread that died on an exception leaves the socket open and the session alive: the new
    thread goes on reading it and never connects again, so no ``connected`` event will come
    (the caller keeps the link up); a session that drops meanwhile is reported by the new
    thread as a ``disconnected`` event. When paho holds none, the new thread reconnects."""
    up = bool(client.is_connected())
    client._thread = None  # what is left of the dead thread: let loop_start() create a new one
    close_wakeup_pair(client)  # loop_start() makes a new one
    client.loop_start()
    return up


def close_wakeup_pair(client: mqtt.Client) -> None:
    """Close paho's wake-up socket pair (it keeps no public handle on it)."""
    for name in ("_sockpairR", "_sockpairW"):
        sock = getattr(client, name, None)
        if sock is not None:
            sock.close()
            setattr(client, name, None)


def stop_network_thread(client: mqtt.Client, timeout_s: float) -> bool:
    """Tell paho's network thread to end and join it, for at most ``timeout_s``; whether it
    ended. Call it after ``disconnect()`` or :func:`leave_with_will`, which wake it.

    Instead of paho's ``loop_stop()``, which reads ``client._thread`` again after checking it:
    the thread clears that field when it ends by itself (as it does after ``disconnect()``), so
    ending in between made ``loop_stop()`` call ``None.join()`` (AttributeError, paho 2.2).
    Here the thread is read once and that reference is joined."""
    thread = getattr(client, "_thread", None)
    client._thread_terminate = True
    if thread is None or thread is threading.current_thread():
        return thread is None
    thread.join(timeout_s)
    if thread.is_alive():
        return False
    client._thread = None
    return True


def leave_with_will(client: mqtt.Client, protocol: MQTTProtocolVersion) -> None:
    """End the connection so that the broker publishes the last will (``offline``): with MQTT v5
    a DISCONNECT with reason 0x04 "Disconnect with Will Message"; with v3.1.1, which has no
    such reason, the socket is closed without a DISCONNECT (an abnormal end, for the broker).
    A plain ``disconnect()`` (reason 0) tells the broker to discard the will. Then join the
    thread with :func:`stop_network_thread`."""
    if protocol == mqtt.MQTTv5:
        client.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        )
        return
    shutdown = getattr(client.socket(), "shutdown", None)
    if shutdown is None:  # (not connected: nothing to close; this ends paho's reconnect loop)
        client.disconnect()
        return
    client._thread_terminate = True  # the thread ends on the closed socket, without reconnecting
    try:
        shutdown(socket.SHUT_RDWR)  # (paho's thread sees the end and closes it)
    except OSError:
        pass  # already gone: the broker sees the end anyway
