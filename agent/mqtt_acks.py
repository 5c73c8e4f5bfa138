"""PUBACK accounting for the MQTT link: which messages still wait for their acknowledgement
(predictions and status apart from answers to commands), and the log of every PUBACK with its
reason code that :meth:`agent.mqtt.MqttPublisher.take_acks` hands over. paho's callback puts,
the pipeline thread settles: one place settles a PUBACK."""

from __future__ import annotations

import queue
import time

Ack = tuple[int, int, str]
"""(mid, reason code, reason text) of one PUBACK."""


class Acks:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        self._log: list[Ack] = []
        self.pending: set[int] = set()
        """mids handed to paho with QoS > 0 and not yet acknowledged."""
        self.replies: set[int] = set()
        """mids of answers to commands not yet acknowledged."""
        self.retained: set[int] = set()
        """mids of retained messages among ``pending`` (the link sends them again itself)."""

    def put(self, ack: Ack) -> None:
        """From paho's ``on_publish`` (its network thread): trivial work only."""
        self._queue.put(ack)

    def drain(self) -> None:
        """Settle every PUBACK that came since the last call (the pipeline thread)."""
        # empty() first: the pipeline calls this every step, and get_nowait() on an empty
        # queue raises and catches (the only consumer is this thread, so nothing races it)
        acks = self._queue
        if acks.empty():
            return
        while not acks.empty():
            self._settle(acks.get_nowait())
        del self._log[:-10000]  # (kept for take; bounded when nobody takes them)

    def take(self) -> list[Ack]:
        """Every PUBACK since the last call."""
        self.drain()
        out, self._log = self._log, []
        return out

    def wait(self, timeout_s: float) -> int:
        """Settle PUBACKs until none is pending or ``timeout_s`` passed; the messages still
        pending."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.drain()
            if not self.pending or time.monotonic() >= deadline:
                return len(self.pending)
            try:
                self._settle(self._queue.get(timeout=0.05))
            except queue.Empty:
                continue

    def restart(self) -> int:
        """The link replaced its client: forget every mid of the old one (pending, replies, and
        PUBACKs received but not yet taken: the new client numbers its messages from 1 again, so
        an old mid would settle a new message). Return how many messages other than retained ones
        were pending: handed over, never acknowledged (the retained ones the link sends again)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._log.clear()
        lost = len(self.pending - self.retained)
        self.pending.clear()
        self.retained.clear()
        self.replies.clear()
        return lost

    def _settle(self, ack: Ack) -> None:
        """One PUBACK: its message is no longer pending nor an open reply; logged for take."""
        mid = ack[0]
        self.pending.discard(mid)
        self.replies.discard(mid)
        self.retained.discard(mid)
        self._log.append(ack)
