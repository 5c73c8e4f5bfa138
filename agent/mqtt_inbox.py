"""Incoming MQTT messages waiting for the pipeline thread: bounded, each kept short, drops
counted and logged once when they start and once when they stop (paho's callback puts, the
pipeline thread takes: one writer per counter, no lock)."""

from __future__ import annotations

import logging
import queue

from agent.publishers import Command

log = logging.getLogger("agent.mqtt")

MAX_INBOX = 100
"""Incoming messages that may wait for the pipeline; more are dropped in paho's callback."""


class Inbox:
    """``latest_topics`` (Home Assistant's ``online``/``offline``) are not commands: only the
    latest message of each is kept, beside the bound and ahead of the commands, so a command
    flood can neither drop nor delay it."""

    def __init__(self, limit: int, keep_bytes: int, latest_topics: tuple[str, ...] = ()) -> None:
        self.limit = limit
        self.keep_bytes = keep_bytes
        self.latest_topics = frozenset(latest_topics)
        self._latest: dict[str, Command] = {}  # paho's thread sets, the pipeline thread pops
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._in = 0  # put (paho's thread only)
        self._out = 0  # taken (the pipeline thread only)
        self.dropped = 0
        """Messages dropped because ``limit`` were waiting (paho's thread counts)."""
        self._dropped_seen = 0
        self._dropping = False

    def put(self, topic: str, payload: bytes | bytearray) -> None:
        """From paho's callback: keep the message, or drop it when ``limit`` wait. A message that
        waits keeps at most ``keep_bytes`` (with MQTT v3.1.1 nothing bounds what arrives)."""
        if topic in self.latest_topics:
            self._latest[topic] = Command(topic=topic, payload=bytes(payload[: self.keep_bytes]))
            return
        if self._in - self._out >= self.limit:
            self.dropped += 1
            return
        self._queue.put(Command(topic=topic, payload=bytes(payload[: self.keep_bytes])))
        self._in += 1

    def take(self, n: int) -> list[Command]:
        """The latest message of each latest-topic that came, then the oldest ``n`` waiting
        commands at most (the pipeline thread)."""
        out: list[Command] = []
        if self._latest:
            for topic in self.latest_topics:
                msg = self._latest.pop(topic, None)
                if msg is not None:
                    out.append(msg)
            n += len(out)
        latest = len(out)
        q = self._queue
        while len(out) < n and not q.empty():
            out.append(q.get_nowait())
        self._out += len(out) - latest  # (commands only: _in counts no latest-topic message)
        return out

    def qsize(self) -> int:
        """Messages waiting: commands, and latest-topic messages."""
        return self._queue.qsize() + len(self._latest)

    def log_drops(self) -> None:
        """Once when messages start being dropped, once when that stops: no new drop since the
        last call and the inbox at most half full (the pipeline thread, each poll)."""
        dropped = self.dropped
        if dropped == self._dropped_seen and not self._dropping:
            return
        if dropped != self._dropped_seen:
            self._dropped_seen = dropped
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "%d incoming messages wait for the agent: dropping further commands "
                    "until it catches up (a command flood?)",
                    self.limit,
                )
        elif self._in - self._out <= self.limit // 2:
            self._dropping = False
            log.info("commands are taken again (%d incoming messages dropped so far)", dropped)
