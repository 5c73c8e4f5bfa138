"""A stop while the first connection waits for a CONNACK that never comes ends
:func:`agent.mqtt_connect.connect` promptly: paho's network thread is woken (a DISCONNECT
queued) before it is joined, instead of being joined only once its 1 s select times out."""

from __future__ import annotations

import queue
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt_connect import ConnectStopped, connect
from agent.mqtt_settings import MqttSettings


def test_a_stop_during_the_first_connect_returns_promptly() -> None:
    stop = threading.Event()
    stopped_at: list[float] = []
    calls: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)  # the kernel completes the handshake; nothing is ever sent back
        server.settimeout(30)
        port = int(server.getsockname()[1])
        accepted: list[socket.socket] = []

        def stop_once_connect_is_sent() -> None:
            conn, _ = server.accept()
            accepted.append(conn)
            conn.settimeout(30)
            if conn.recv(1)[:1] == b"\x10":  # CONNECT: connect() now waits for the CONNACK
                time.sleep(0.1)  # (paho's thread is back in its select)
                stopped_at.append(time.monotonic())
                stop.set()

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="connect-stop-test", protocol=mqtt.MQTTv5
        )
        disconnect = client.disconnect

        def spy_disconnect(*args: object, **kwargs: object) -> mqtt.MQTTErrorCode:
            calls.append("disconnect")
            return disconnect(*args, **kwargs)  # type: ignore[arg-type]

        client.disconnect = spy_disconnect  # type: ignore[method-assign]
        stopper = threading.Thread(target=stop_once_connect_is_sent, daemon=True)
        stopper.start()
        settings = MqttSettings("127.0.0.1", port, "connect-stop-test", connect_timeout_s=30)
        events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        try:
            with pytest.raises(ConnectStopped):
                connect(client, settings, mqtt.MQTTv5, events, stop)
            returned_at = time.monotonic()
        finally:
            stopper.join(timeout=30)
            for conn in accepted:
                conn.close()
            for name in ("_sockpairR", "_sockpairW"):  # (as MqttPublisher.stop closes them)
                sock = getattr(client, name, None)
                if sock is not None:
                    sock.close()
    assert calls == ["disconnect"]  # (then its thread is joined: stop_network_thread)
    # was 0.8-1 s (paho's select timing out); generous for a loaded machine
    assert returned_at - stopped_at[0] < 0.6
    assert not any(t.name.endswith("-connect-stop-test") for t in threading.enumerate())
