"""Where predictions go: the :class:`Publisher` protocol and its small implementations.

The MQTT implementation lives in :mod:`agent.mqtt`; here are the ones that need no broker:
:class:`StdoutPublisher` (``--no-mqtt``: ``topic payload`` lines on standard output) and
:class:`MemoryPublisher` (tests and benchmarks: keeps every message in a list).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TextIO


@dataclass(frozen=True)
class Command:
    """A message that arrived on the agent's command topic."""

    topic: str
    payload: bytes


class Publisher(Protocol):
    def start(self) -> None:
        """Connect; raise :class:`PublishError` if that is impossible."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Hand one message over for delivery (never blocks on the network)."""

    def reply(self, topic: str, payload: bytes) -> bool:
        """Send the answer to a command (QoS 1); return whether it went. A broker link sends it
        on the live connection only, never through the outbox (an answer is for a client
        waiting now); the brokerless publishers treat it as any QoS 1 message."""

    def poll(self) -> list[Command]:
        """Called from the pipeline thread: log connection changes, return received commands."""

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for handed-over messages to be delivered; return how many
        are still undelivered."""

    def stop(self) -> int:
        """Say goodbye (status offline) and disconnect; return how many handed-over messages
        were lost: neither delivered nor kept for a later start."""

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        """The publisher's sections of the metrics topic (docs/mqtt.md, "Metrics"): an MQTT link's
        ``commands``, an outbox's ``outbox``; none for the brokerless publishers."""


@dataclass
class MemoryPublisher:
    """Keeps every message; ``commands`` are handed to the pipeline on the next poll."""

    messages: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    started: bool = False
    stopped: bool = False

    def start(self) -> None:
        self.started = True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.messages.append((topic, payload, qos, retain))

    def reply(self, topic: str, payload: bytes) -> bool:
        self.publish(topic, payload, 1)
        return True

    def poll(self) -> list[Command]:
        out, self.commands = self.commands, []
        return out

    def flush(self, timeout_s: float) -> int:
        return 0

    def stop(self) -> int:
        self.stopped = True
        return 0

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        return {}

    def payloads(self, suffix: str) -> list[bytes]:
        """Payloads sent to topics ending in ``suffix`` (e.g. "/prediction"), in order."""
        return [p for t, p, _, _ in self.messages if t.endswith(suffix)]


def _write_all(raw: BinaryIO, data: bytes) -> None:
    """Write every byte: an unbuffered binary layer (a raw file) may take fewer at a time."""
    view = memoryview(data)
    while view:
        n = raw.write(view)
        view = view[n if n is not None else 0 :]


class StdoutPublisher:
    """Writes ``topic payload`` lines, like ``mosquitto_sub -v`` would show them.

    Each line is written and flushed as it comes (a paced replay piped into ``jq`` shows every
    prediction when it happens), unless ``flush_each`` is off: an unpaced replay gathers its
    lines and writes them ``BATCH_BYTES`` at a time, and at the end (a system call per line
    would cost more than the agent's own work, and a stream's binary layer may be unbuffered:
    ``python -u`` and ``PYTHONUNBUFFERED`` make standard output's a raw file).

    The payload's bytes go straight to the stream's binary layer when it has one (standard
    output does), rather than being decoded to text for the text layer to encode again: the
    publisher is the only writer of the stream while it runs (:meth:`start` flushes what was
    written before as text).
    """

    BATCH_BYTES = 1 << 16

    def __init__(self, stream: TextIO | None = None, flush_each: bool = True) -> None:
        self._out = stream or sys.stdout
        self._raw: BinaryIO | None = getattr(self._out, "buffer", None)
        self._flush_each = flush_each
        self._prefixes: dict[str, bytes] = {}
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def start(self) -> None:
        if self._raw is not None:
            self._out.flush()  # text written before goes out first

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self._raw is None:  # a text stream alone (tests' StringIO)
            self._out.write(f"{topic} {payload.decode('utf-8')}\n")
            if self._flush_each:
                self._out.flush()
            return
        prefix = self._prefixes.get(topic)
        if prefix is None:
            prefix = self._prefixes[topic] = topic.encode() + b" "
        line = prefix + payload + b"\n"
        if self._flush_each:
            _write_all(self._raw, line)
            self._raw.flush()
            return
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.BATCH_BYTES:
            self._drain()

    def _drain(self) -> None:
        """Write the gathered lines (the binary layer may be unbuffered: every byte of them)."""
        if self._pending and self._raw is not None:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            _write_all(self._raw, data)

    def reply(self, topic: str, payload: bytes) -> bool:
        self.publish(topic, payload, 1)
        return True

    def poll(self) -> list[Command]:
        return []

    def flush(self, timeout_s: float) -> int:
        self._drain()
        self._out.flush()  # (a text stream flushes its binary layer too)
        return 0

    def stop(self) -> int:
        return self.flush(0.0)

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        return {}
