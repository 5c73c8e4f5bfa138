"""Store-and-forward: the :class:`Publisher` that puts QoS>0 messages through the disk outbox.

``publish`` commits the message to the outbox (from then on it counts as produced) and hands at
most ``window`` rows at a time to the MQTT link, oldest first. A row leaves the outbox only when its
PUBACK arrives with a success reason code (< 0x80); a refusal (not authorised, quota exceeded,
payload format invalid, topic invalid, ...) moves it to the dead-letter table, once, with no retry
storm. While the link is down (or was never up: the daemon starts even when the broker cannot be
reached, see :mod:`agent.mqtt`) nothing is handed over and rows simply wait on disk; paho re-sends
what was in flight when the link comes back, and after a restart everything still in the outbox is
sent again from the oldest row. When the link replaces its client (a broker that now speaks MQTT
v3.1.1 only: :attr:`~agent.mqtt.MqttPublisher.epoch` moves on), the rows in flight on the old one
will never be acknowledged: they are handed to the new client again, oldest first (at least once:
some may have been delivered, and arrive twice). QoS 0 messages and retained status messages
bypass the outbox, and so do answers to commands (:meth:`OutboxPublisher.reply`): they go to the
live link only, and are dropped while it is down, so that a command flood can neither fill the
disk nor queue ahead of predictions.

An outbox that cannot be written (a full disk) does not stop the agent: one warning when it
starts, one line when it clears; meanwhile a prediction the outbox cannot store goes straight to
the live link (QoS 1, acknowledged by the link alone), or is dropped and counted while the link
is down (:attr:`OutboxPublisher.unstored_sent`, :attr:`~OutboxPublisher.unstored_dropped`); a
PUBACK the outbox cannot record keeps its row on disk and in a list of rows delivered but not
yet recorded: not sent again in this run, not waited for at stop, and recorded as soon as a write
works again (every ``poll``, ``flush`` and at ``stop``); only if the disk stays full until the
agent stops is such a row sent again after the next start (a duplicate, never a loss). An expiry
the outbox cannot record leaves its rows on disk for the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent.errors import OutboxError
from agent.outbox import Outbox, OutboxStats
from agent.publishers import Command

log = logging.getLogger(__name__)


class Link(Protocol):
    """What the forwarder needs of an MQTT connection (``MqttPublisher`` provides it)."""

    @property
    def connected(self) -> bool: ...

    @property
    def epoch(self) -> int:
        """Moves on when the link replaced its client: mids it handed out before will never be
        acknowledged."""

    def start(self) -> None: ...

    def send(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> int | None: ...

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...

    def take_acks(self) -> list[tuple[int, int, str]]: ...

    def reply(self, topic: str, payload: bytes) -> bool: ...

    def poll(self) -> list[Command]: ...

    def poll_events(self) -> None:
        """Apply connection changes (what :attr:`connected` says), taking no commands."""

    def stop(self) -> int: ...

    def counters(self) -> dict[str, dict[str, int | float | None]]: ...


class OutboxPublisher:
    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        *,
        window: int = 32,
        wall: Callable[[], float] = time.time,
        expire_every_s: float = 60.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.outbox = outbox
        self.link = link
        self.window = window
        self._wall = wall
        self._inflight: dict[int, int] = {}  # mid -> row id
        self._epoch = link.epoch  # (of the mids in _inflight)
        self._last_sent = 0
        self._was_connected = False
        self._expire_every = expire_every_s
        self._next_expire = 0.0
        self.unstored_sent = 0
        """Predictions the outbox could not store, handed straight to the live link."""
        self.unstored_dropped = 0
        """Predictions the outbox could not store while the link was down: lost."""
        self._failing: tuple[int, int] | None = None  # while writes fail: the counts at the start
        self._unrecorded: dict[int, str | None] = {}
        """Rows the broker answered whose ack (None) or dead letter (the reason) could not be
        written: delivered, still on disk, retried by :meth:`_settle`."""

    # -- Publisher protocol ---------------------------------------------------------------------
    def start(self) -> None:
        backlog = self.outbox.stats(self._wall()).length
        self.link.start()
        if backlog:
            log.info(
                "outbox holds %d unacknowledged messages from before: sending them first", backlog
            )
        self.pump()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if qos == 0 or retain:
            self.link.publish(topic, payload, qos=qos, retain=retain)
            return
        try:
            self.outbox.put(topic, payload, qos, retain, now=self._wall())
        except OutboxError as exc:
            self._cannot_write(exc)
            self.pump()  # what is on disk goes first
            if self.link.connected:
                self.link.publish(topic, payload, qos=qos)
                self.unstored_sent += 1
            else:
                self.unstored_dropped += 1
            return
        if self._failing is not None:
            sent, dropped = self._failing
            self._failing = None
            log.info(
                "the outbox can be written again (meanwhile %d predictions went straight to the "
                "MQTT broker, %d were dropped)",
                self.unstored_sent - sent,
                self.unstored_dropped - dropped,
            )
        self.pump()

    def reply(self, topic: str, payload: bytes) -> bool:
        """An answer to a command: to the live link only, never through the outbox (dropped and
        counted by the link while it is down); True when handed over."""
        return self.link.reply(topic, payload)

    def poll(self) -> list[Command]:
        commands = self.link.poll()
        self._settle()
        now = self._wall()
        if now >= self._next_expire:
            try:
                dropped = self.outbox.expire(now)
            except OutboxError as exc:
                self._cannot_write(exc)
                dropped = 0
            if dropped:
                log.warning("outbox: %d messages older than the TTL were dropped", dropped)
            self._next_expire = now + self._expire_every
        self.pump()
        return commands

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the broker to take the outbox's rows; the rows left.

        Commands are not touched: they stay in the link's inbox for the next :meth:`poll` (at
        :meth:`stop`, which flushes, they are left there unanswered)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.link.poll_events()  # (connection changes; PUBACKs come with _settle)
            self._settle()
            self.pump()
            left = max(0, self.outbox.stats(self._wall()).length - len(self._unrecorded))
            if left == 0 or not self.link.connected or time.monotonic() >= deadline:
                return left  # (without a broker there is nothing to wait for: it is on disk)
            time.sleep(0.02)

    def stop(self) -> int:
        """Flush, say goodbye, close; return the messages lost, as ``MqttPublisher.stop`` does
        (``Agent.lost``), and log them: what went around the outbox (retained status, QoS 0,
        predictions it could not store) and was not delivered. Rows left in the outbox are not
        lost: the next start sends them."""
        left = self.flush(5.0)  # while connected, the broker may still take the backlog
        self._record_unrecorded()  # once more: the disk may have room now
        if left:
            log.info("outbox: %d messages stay on disk and will be sent after the next start", left)
        if self._unrecorded:
            log.warning(
                "outbox: %d messages the MQTT broker answered could not be recorded as such "
                "(the outbox cannot be written): they stay on disk and will be sent again after "
                "the next start (duplicates)",
                len(self._unrecorded),
            )
        try:
            lost = self.link.stop() + self.unstored_dropped
        finally:
            self.outbox.close()  # (records the counters: Outbox.close)
        if lost:
            log.warning(
                "%d messages that did not go through the outbox (retained status, QoS 0, "
                "predictions it could not store) were not delivered to the MQTT broker",
                lost,
            )
        return lost

    # -- forwarding -----------------------------------------------------------------------------
    def _follow_link(self) -> None:
        """After the link replaced its client, send what was in flight on the old one again."""
        epoch = self.link.epoch
        if epoch == self._epoch:
            return
        self._epoch = epoch
        if self._inflight:
            log.info(
                "%d messages in flight on the replaced MQTT client are sent again from the outbox",
                len(self._inflight),
            )
        self._inflight.clear()
        self._last_sent = 0

    def _settle(self) -> None:
        """Apply every PUBACK that has arrived, and those that could not be recorded before."""
        self._follow_link()  # (first: an old mid must not settle a row of the new client)
        for mid, code, text in self.link.take_acks():
            row = self._inflight.pop(mid, None)
            if row is None:
                continue  # a status message, or a mid from before a restart
            # paho names every reason code (text)
            self._unrecorded[row] = None if code < 0x80 else f"{text} (0x{code:02x})"
        self._record_unrecorded()

    def _record_unrecorded(self) -> None:
        """Write the acks and dead letters of :attr:`_unrecorded`, oldest first, until a write
        fails (the disk is still full: the rest stays for the next try)."""
        now = self._wall()
        for row, reason in sorted(self._unrecorded.items()):
            try:
                if reason is None:
                    self.outbox.ack(row)
                else:
                    self.outbox.dead(row, reason, now)
                    log.warning(
                        "broker refused message %d (%s): moved to dead letters", row, reason
                    )
            except OutboxError as exc:  # delivered, still on disk: not sent again in this run
                self._cannot_write(exc)
                return
            del self._unrecorded[row]

    def _cannot_write(self, exc: OutboxError) -> None:
        """A write to the outbox failed: one warning until a ``put`` works again."""
        if self._failing is None:
            self._failing = (self.unstored_sent, self.unstored_dropped)
            log.warning(
                "%s; the agent runs on: until the outbox can be written again, predictions go "
                "straight to the MQTT broker while it is connected, and are dropped (counted) "
                "while it is not",
                exc,
            )

    def pump(self) -> int:
        """Hand rows to the link while it is up and the window has room; return how many."""
        self._follow_link()
        connected = self.link.connected
        if connected and not self._was_connected and not self._inflight:
            self._last_sent = 0  # fresh link, nothing in paho's hands: start from the oldest row
        self._was_connected = connected
        if not connected:
            return 0
        sent = 0
        room = self.window - len(self._inflight)
        while room > 0:
            rows = self.outbox.take(room, after_id=self._last_sent)
            if not rows:
                break
            for row in rows:
                if row.id in self._unrecorded:  # delivered, its ack not written yet
                    self._last_sent = row.id
                    continue
                mid = self.link.send(row.topic, row.payload, qos=row.qos, retain=row.retain)
                if mid is None:
                    return sent
                self._inflight[mid] = row.id
                self._last_sent = row.id
                sent += 1
            room = self.window - len(self._inflight)
        return sent

    def stats(self) -> OutboxStats:
        return self.outbox.stats(self._wall())

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        """The link's sections, then ``outbox``: what waits on disk and what was lost."""
        st = self.stats()
        return {
            **self.link.counters(),
            "outbox": {
                "length": st.length,
                "bytes": st.bytes,
                "oldest_age_s": st.oldest_age_s,
                "dropped_cap": st.dropped_cap,
                "dropped_ttl": st.dropped_ttl,
                "rejected": st.rejected,
                "dead": st.dead,
                "inflight": self.inflight,
            },
        }

    @property
    def inflight(self) -> int:
        return len(self._inflight)
