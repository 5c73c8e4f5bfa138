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
    """One MQTT v5 client; records (packet, detail) in order; never sends a PUBACK."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = int(self.server.getsockname()[1])
        self.packets: list[tuple[str, str]] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        try:
            while True:
                head = conn.recv(1)
                if not head:
                    break
                kind = head[0] >> 4
                body = _recv(conn, _varint(conn))
                if kind == 1:
                    self.packets.append(("CONNECT", ""))
                    conn.sendall(bytes([0x20, 3, 0, 0, 0]))
                elif kind == 3:
                    n = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + n].decode()
                    qos = (head[0] >> 1) & 3
                    rest = body[2 + n + (2 if qos else 0) :]
                    self.packets.append(("PUBLISH", f"{topic} {rest[1 + rest[0] :]!r}"))
                elif kind == 8:
                    self.packets.append(("SUBSCRIBE", ""))
                    conn.sendall(bytes([0x90, 4]) + body[:2] + bytes([0, 1]))
                elif kind == 12:
                    conn.sendall(bytes([0xD0, 0]))
                elif kind == 14:
                    self.packets.append(("DISCONNECT", f"reason {body[0] if body else 0}"))
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
            self.closed.set()

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
