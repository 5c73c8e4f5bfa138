"""The retained ``offline`` at stop, behind a broker that does not acknowledge (review s14, D).
paho keeps at most 20 QoS 1 messages in flight and only queues the rest, so with a slow broker
the stop's ``offline`` may never be written; a plain DISCONNECT (reason 0) then told the broker
to discard the will, and it kept ``online`` for a stopped agent. Now the stop ends with reason
0x04, "Disconnect with Will Message", and counts ``offline`` as lost. The broker here is a
recorder: it answers CONNECT and SUBSCRIBE and never acknowledges a PUBLISH."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.forwarder import OutboxPublisher
from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings
from agent.outbox import Outbox
from agent.payload import Topics


def _varint(conn: socket.socket) -> int:
    mult, value = 1, 0
    while True:
        b = conn.recv(1)
        if not b:
            raise EOFError
        value += (b[0] & 0x7F) * mult
        if not b[0] & 0x80:
            return value
        mult *= 128


def _recv(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class Recorder:
    """One MQTT client; records (packet, detail) in order; never sends a PUBACK.

    With ``v311`` it speaks MQTT 3.1.1 only: a v5 CONNECT gets CONNACK return code 1
    ("unacceptable protocol version") and the connection closed, as a 3.1.1 broker answers it,
    and the client's next connection (the link's fallback) is served."""

    def __init__(self, v311: bool = False) -> None:
        self.v311 = v311
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(2)
        self.port = int(self.server.getsockname()[1])
        self.packets: list[tuple[str, str]] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._serve_one():
            pass
        self.closed.set()

    def _serve_one(self) -> bool:
        """Serve one connection; whether to accept another (the v5 one a 3.1.1 broker refused)."""
        try:
            conn, _ = self.server.accept()
        except OSError:
            return False
        try:
            while True:
                head = conn.recv(1)
                if not head:
                    break
                kind = head[0] >> 4
                body = _recv(conn, _varint(conn))
                if kind == 1:
                    level = body[6]  # after the protocol name "MQTT": 4 is 3.1.1, 5 is v5
                    self.packets.append(("CONNECT", f"level {level}"))
                    if self.v311 and level != 4:
                        conn.sendall(bytes([0x20, 2, 0, 1]))
                        return True
                    conn.sendall(bytes([0x20, 2, 0, 0]) if self.v311 else bytes([0x20, 3, 0, 0, 0]))
                elif kind == 3:
                    n = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + n].decode()
                    qos = (head[0] >> 1) & 3
                    rest = body[2 + n + (2 if qos else 0) :]
                    payload = rest if self.v311 else rest[1 + rest[0] :]
                    self.packets.append(("PUBLISH", f"{topic} {payload!r}"))
                elif kind == 8:
                    self.packets.append(("SUBSCRIBE", ""))
                    ack = bytes([0, 1]) if not self.v311 else bytes([1])
                    conn.sendall(bytes([0x90, 2 + len(ack)]) + body[:2] + ack)
                elif kind == 12:
                    conn.sendall(bytes([0xD0, 0]))
                elif kind == 14:
                    self.packets.append(("DISCONNECT", f"reason {body[0] if body else 0}"))
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
        return False

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


def test_unacknowledged_offline_leaves_with_the_will(recorder: Recorder, tmp_path: Path) -> None:
    topics = Topics("har", "s14-will")
    settings = MqttSettings(
        "127.0.0.1", recorder.port, "har-agent-s14-will", connect_timeout_s=5, reconnect_min_s=1
    )
    link = MqttPublisher(settings, topics, retry_in_background=True)
    pub = OutboxPublisher(Outbox(tmp_path / "o.db"), link, window=32)
    pub.start()
    for i in range(40):
        pub.publish(topics.prediction, b'{"seq":%d}' % i)
    assert pub.inflight == 32  # paho has 20 of them on the wire, 12 queued
    lost = pub.stop()
    assert recorder.closed.wait(10)
    stream = [p for p in recorder.packets if not p[1].startswith(topics.prediction)]
    offline = ("PUBLISH", f"{topics.status} b'offline'")
    # the broker publishes the will: it either got `offline` itself before a DISCONNECT, or
    # a DISCONNECT that asks for the will (0x04)
    assert stream[-1][0] == "DISCONNECT", stream
    assert offline in stream or stream[-1] == ("DISCONNECT", "reason 4"), stream
    assert stream[-1] == ("DISCONNECT", "reason 4")  # (here `offline` stays queued in paho)
    assert link.left_with_will
    assert lost >= 1  # `offline`, not acknowledged


def test_the_v311_link_leaves_with_the_will_by_closing(tmp_path: Path) -> None:
    """MQTT 3.1.1 has no "disconnect with will" reason: after the fallback, the link closes
    the connection without a DISCONNECT (which would discard the will)."""
    recorder = Recorder(v311=True)
    try:
        topics = Topics("har", "s15-will")
        settings = MqttSettings(
            "127.0.0.1",
            recorder.port,
            "har-agent-s15-will",
            connect_timeout_s=5,
            reconnect_min_s=1,
        )
        link = MqttPublisher(settings, topics)
        pub = OutboxPublisher(Outbox(tmp_path / "o.db"), link, window=32)
        pub.start()
        for i in range(40):
            pub.publish(topics.prediction, b'{"seq":%d}' % i)
        lost = pub.stop()
        assert recorder.closed.wait(10)
    finally:
        recorder.close()
    assert link.protocol == mqtt.MQTTv311
    assert [p for p in recorder.packets if p[0] == "CONNECT"] == [
        ("CONNECT", "level 5"),
        ("CONNECT", "level 4"),
    ]
    assert not any(p[0] == "DISCONNECT" for p in recorder.packets), recorder.packets
    assert link.left_with_will
    assert lost >= 1


def test_a_link_that_never_connected_leaves_nothing(tmp_path: Path) -> None:
    """No connection at stop: no will to ask for (the flag says what the stop did)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings = MqttSettings(
        "127.0.0.1", port, "har-agent-s15-never", connect_timeout_s=1, reconnect_min_s=1
    )
    link = MqttPublisher(settings, Topics("har", "s15-never"), retry_in_background=True)
    link.start()
    assert not link.connected
    link.stop()
    assert not link.left_with_will
