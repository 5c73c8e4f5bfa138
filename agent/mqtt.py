"""MQTT publisher over paho-mqtt 2.x (VERSION2 callbacks).

- MQTT v5 (PUBACK reason codes); a broker that refuses v5 gets a fresh v3.1.1 client, at start
  or later, also after a working v5 session (a broker replaced by a v3.1.1-only one): then the
  old client's message ids are forgotten and :attr:`MqttPublisher.epoch` tells the outbox
  forwarder to send its rows in flight again.
- QoS 1 by default; paho retries unacknowledged messages after a reconnect.
- Every PUBACK is reported with its reason code (:meth:`MqttPublisher.take_acks`): paho calls a
  refused publish "published" too, so the outbox forwarder checks the code. What still waits
  for one is kept in :mod:`agent.mqtt_acks`.
- Reconnect with capped exponential backoff (paho's ``reconnect_delay_set``) on its own thread.
- At start, a broker that cannot be reached (refused, TLS or authentication failure, no answer;
  :mod:`agent.mqtt_connect`) is an error for a replay (one line, non-zero exit). For the daemon
  (``retry_in_background``, the outbox in front) it is logged once, naming the problem, and paho
  keeps retrying with the same backoff while predictions wait on disk: inference never stops
  because the broker is away. The run's stop event (Ctrl-C, SIGTERM) ends the wait for the first
  connection at once: :meth:`MqttPublisher.start` returns unconnected and the run stops cleanly,
  instead of waiting out ``connect_timeout_s`` to report a broker error.
- Retained ``online`` status published on every (re)connect; a last will sets it ``offline``.
- The command topic is subscribed in ``on_connect``, so the subscription survives reconnects
  (the paho client, made and subscribed: :mod:`agent.mqtt_client`). A command is obeyed when it
  is sent, never because the broker kept it: the v5 subscription asks for no retained messages,
  and a message with the retain flag on the command topic is dropped, logged once per run with
  how to clear it (Home Assistant's ``homeassistant/status`` is still taken retained).
- Callbacks run on paho's network thread and only put events on queues; the pipeline thread
  calls :meth:`MqttPublisher.poll` to log connection changes (once each; the state they change is
  :mod:`agent.mqtt_state`'s) and collect commands.
- Incoming messages cannot flood the agent (docs/mqtt.md, commands): a Maximum Packet Size in
  the v5 CONNECT, a bounded inbox (:mod:`agent.mqtt_inbox`), at most
  :data:`~agent.commands.MAX_COMMANDS_PER_STEP` commands a poll and no more than there is room
  for their replies (:data:`MAX_REPLIES_IN_FLIGHT`), which go to the live link only
  (:meth:`MqttPublisher.reply`), never queued for a link that is down.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

from agent.commands import MAX_COMMAND_BYTES, MAX_COMMANDS_PER_STEP
from agent.errors import PublishError
from agent.mqtt_acks import Ack, Acks
from agent.mqtt_client import (
    close_wakeup_pair,
    leave_with_will,
    make_client,
    network_thread_alive,
    restart_network_thread,
    stop_network_thread,
    subscribe,
)
from agent.mqtt_connect import ConnectStopped, UnsupportedProtocol, connect, disconnect_reason
from agent.mqtt_inbox import MAX_INBOX, Inbox
from agent.mqtt_retained import RetainedState
from agent.mqtt_settings import MqttSettings, connect_properties
from agent.mqtt_state import LinkState
from agent.payload import Topics
from agent.publishers import Command

log = logging.getLogger(__name__)

MAX_REPLIES_IN_FLIGHT = MAX_COMMANDS_PER_STEP
"""Answers to commands handed to paho and not yet acknowledged. paho keeps at most 20 QoS 1
messages on the wire (its default ``max_inflight_messages``) and queues the rest in order: replies
hold at most half of that, so at most 10 replies can be ahead of a prediction. :meth:`poll`
takes commands only while their replies have room (a burst is answered over several steps);
:meth:`reply` drops what would exceed it."""


class MqttPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        topics: Topics,
        *,
        retry_in_background: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        """``stop``: the run's stop event; once set, :meth:`start` stops waiting for the broker."""
        self.settings = settings
        self.topics = topics
        self.retry_in_background = retry_in_background
        self._stop = stop
        self._state = LinkState(
            settings,
            retry_in_background=retry_in_background,
            fall_back=self._fall_back_to_v311,
            up=self._up,
        )
        self._events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.retained_commands_dropped = 0
        """Retained messages on the command topic, dropped unread (paho's thread counts)."""
        self._retained_command_logged = False
        # (one byte over the limit: the answer says so)
        self._inbox = Inbox(MAX_INBOX, MAX_COMMAND_BYTES + 1, settings.subscriptions)
        self._acks = Acks()
        self._retained = RetainedState()
        self._queue_full_logged = False
        self.dropped = 0
        self.replies_dropped = 0
        """Answers to commands not sent: link down, or ``MAX_REPLIES_IN_FLIGHT`` unacknowledged."""
        self.network_restarts = 0
        self.epoch = 0
        """Moves on each time the link replaces its client after a working session (the v3.1.1
        fallback): mids handed out before will never be acknowledged."""
        self.abandoned = 0
        """Messages (QoS > 0, not retained) the replaced client held unacknowledged: lost."""
        self.left_with_will = False
        """The stop ended a connected link so that the broker publishes the last will
        (``offline``): its own ``offline`` was not acknowledged in time, or could not be sent
        (:meth:`stop`)."""
        self._loop_running = False
        self.protocol = mqtt.MQTTv5
        self._client = self._make_client(mqtt.MQTTv5)

    def _make_client(self, protocol: MQTTProtocolVersion) -> mqtt.Client:
        client = make_client(self.settings, self.topics.status, protocol)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- paho callbacks: network thread, trivial work only ------------------------------------
    # (a client the link has replaced is ignored: its thread may outlive the bounded join)
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if client is not self._client:
            return
        if rc.is_failure:
            self._events.put(("refused", str(rc)))
            return
        subscribe(client, self.topics.command, self.settings.subscriptions, self.protocol)
        client.publish(self.topics.status, "online", qos=1, retain=True)
        self._events.put(("connected", str(rc)))

    def _on_disconnect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if client is not self._client:
            return
        self._events.put(("disconnected", disconnect_reason(flags, rc, self.settings.client_id)))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics.command and msg.retain:
            self.retained_commands_dropped += 1  # logged by the pipeline thread (poll)
            return
        self._inbox.put(msg.topic, msg.payload)

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if client is not self._client:
            return
        self._acks.put((mid, int(rc.value), str(rc)))

    # -- pipeline thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect; a failure raises :class:`PublishError`, or with ``retry_in_background`` is
        logged once and left to paho's reconnect loop (capped exponential backoff). When the
        stop event is set before the broker answers, returns unconnected, with nothing left
        running (:meth:`stop` still closes the link)."""
        try:
            try:
                self._connect()
            except UnsupportedProtocol:
                log.info("the broker does not speak MQTT v5; using v3.1.1")
                self.protocol = mqtt.MQTTv311
                self._client = self._make_client(mqtt.MQTTv311)
                self._connect()
        except ConnectStopped:
            while not self._events.empty():  # (paho's thread has ended: nothing more comes)
                self._events.get_nowait()
            log.info("stopped before the MQTT broker at %s answered", self.settings.address)
        except PublishError as exc:
            if not self.retry_in_background:
                raise
            self._start_background(str(exc))

    def _start_background(self, problem: str) -> None:
        s = self.settings
        self._state.start_failure = problem
        log.warning(
            "%s; predictions wait in the outbox, retrying every %d-%d s",
            problem,
            s.reconnect_min_s,
            s.reconnect_max_s,
        )
        self._client = self._make_client(self.protocol)  # a fresh client: no half-open state
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive_s, properties=connect_properties(self.protocol)
        )
        self._client.loop_start()
        self._loop_running = True

    def _connect(self) -> None:
        connect(self._client, self.settings, self.protocol, self._events, self._stop)
        self._state.connected = self._state.ever_connected = True
        self._loop_running = True

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Hand one message to paho; its mid, or None when paho's queue is full."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return None
        return int(info.mid)

    def take_acks(self) -> list[Ack]:
        """(mid, reason code, reason text) of every PUBACK since the last call."""
        return self._acks.take()

    def reply(self, topic: str, payload: bytes) -> bool:
        """Send the answer to a command, QoS 1, on the live link only: while the link is down,
        or while ``MAX_REPLIES_IN_FLIGHT`` replies wait for their PUBACK, it is dropped and
        counted (:attr:`replies_dropped`). An answer is for a client waiting now, worthless
        minutes later, and must never queue ahead of predictions."""
        if not (self._state.connected and self._client.is_connected()) or (
            len(self._acks.replies) >= MAX_REPLIES_IN_FLIGHT
        ):
            self.replies_dropped += 1
            return False
        info = self._client.publish(topic, payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.replies_dropped += 1
            return False
        self._acks.replies.add(info.mid)
        return True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if retain:
            self._retained.remember(topic, payload, qos)
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            if not self._queue_full_logged:
                log.warning("MQTT queue full (%d messages): dropping", self.settings.max_queued)
                self._queue_full_logged = True
            return
        if self._queue_full_logged:
            log.info("MQTT queue has room again (%d messages dropped so far)", self.dropped)
            self._queue_full_logged = False
        if qos > 0:
            self._acks.pending.add(info.mid)
            if retain:
                self._acks.retained.add(info.mid)
        # acknowledgements are drained once per pipeline step (poll) and by flush, not here:
        # this is the hot path, and an empty queue.get_nowait() raises and catches each time

    def _watch_network_thread(self) -> None:
        """paho's network thread dies if anything raises inside it; restart it if so. The link
        is marked down only when paho says it is disconnected (then its new thread reconnects,
        and that event marks it up)."""
        if not self._loop_running or network_thread_alive(self._client):
            return
        self.network_restarts += 1
        log.error("the MQTT network thread died; restarting it (restart %d)", self.network_restarts)
        if not restart_network_thread(self._client):
            self._state.connected = False

    def _stop_network_thread(self) -> None:
        """Join paho's network thread (told to end), bounded: its 1 s select, a reconnect
        under way (``connect_timeout_s``) and its 1 s reconnect wait."""
        if not stop_network_thread(self._client, self.settings.connect_timeout_s + 2.0):
            log.warning("the MQTT network thread did not end; leaving it")

    def poll_events(self) -> None:
        """Apply connection changes from the network thread, logging each change once."""
        while not self._events.empty():
            kind, detail = self._events.get_nowait()
            self._state.apply(kind, detail, v5=self.protocol == mqtt.MQTTv5)

    def _up(self, ever_connected: bool) -> None:
        """The link is up (:class:`LinkState`); ``ever_connected``: it was before."""
        # replies from before the outage: paho sends them again or the session is gone;
        # either way they must not hold the reply window shut
        self._acks.replies.clear()
        # restore what late subscribers read: after a reconnect all of it (the broker
        # may have restarted empty); on a first connection made in the background, what
        # paho dropped meanwhile (QoS 0; it queued the rest)
        self._retained.resend(self._client, lambda qos: qos == 0 or ever_connected)

    def _fall_back_to_v311(self) -> None:
        """The broker refuses MQTT v5 and speaks v3.1.1 alone: go on with a fresh v3.1.1 client.

        Found after start, before the link ever connected: nothing was ever sent on it (the
        forwarder hands rows over only while connected), but paho queued what was published
        meanwhile (the retained QoS 1 config, health, discovery), so queue that again on the
        new client, or it is lost and its old mids wait for a PUBACK until stop.

        After a working v5 session (the broker was replaced by a v3.1.1-only one): the new
        client numbers its messages from 1 again, so every mid of the old one is forgotten
        (:meth:`Acks.restart`) and :attr:`epoch` moves on, which tells the forwarder that its
        rows in flight will never be acknowledged: it sends them again from the outbox. The
        retained messages go out again when the new client connects (:meth:`_up`); other
        messages the old client held unacknowledged (a replay's predictions) are counted lost
        (:attr:`abandoned`)."""
        s = self.settings
        mid_run = self._state.ever_connected
        self._stop_network_thread()
        self.protocol = mqtt.MQTTv311
        self._client = self._make_client(mqtt.MQTTv311)
        lost = self._acks.restart()
        if mid_run:
            self.epoch += 1
            self.abandoned += lost
            log.warning(
                "the MQTT broker at %s now refuses MQTT v5; switching the link to MQTT v3.1.1%s",
                s.address,
                f" ({lost} messages in flight are lost)" if lost else "",
            )
        else:
            log.info("the broker does not speak MQTT v5; using v3.1.1")
            self._retained.requeue(self._client, self._acks)
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self._client.loop_start()

    def poll(self) -> list[Command]:
        """Apply connection changes and acknowledgements; the oldest waiting incoming messages,
        at most ``MAX_COMMANDS_PER_STEP`` and, while connected, no more than there is room for
        their replies (``MAX_REPLIES_IN_FLIGHT``); the rest wait for a later call."""
        self._watch_network_thread()
        self.poll_events()
        self._acks.drain()
        if self.retained_commands_dropped and not self._retained_command_logged:
            self._retained_command_logged = True
            topic = self.topics.command
            log.warning(
                "ignoring a retained message on the command topic %s: commands are obeyed only "
                "when sent, not replayed by the broker (it would be again on every reconnect); "
                "clear it with: mosquitto_pub -r -n -t %s",
                topic,
                topic,
            )
        inbox = self._inbox
        inbox.log_drops()
        if not inbox.qsize():
            return []
        n = MAX_COMMANDS_PER_STEP
        if self._state.connected:  # (while down, their replies are dropped anyway)
            n = min(n, MAX_REPLIES_IN_FLIGHT - len(self._acks.replies))
        return inbox.take(n)

    def flush(self, timeout_s: float) -> int:
        return self._acks.wait(timeout_s)

    @property
    def inbox_dropped(self) -> int:
        """Incoming messages dropped because ``MAX_INBOX`` were waiting."""
        return self._inbox.dropped

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        """``commands``: what the command topic's guards dropped (docs/mqtt.md, "Metrics")."""
        return {
            "commands": {
                "inbox_dropped": self.inbox_dropped,
                "retained_dropped": self.retained_commands_dropped,
                "replies_dropped": self.replies_dropped,
            }
        }

    @property
    def connected(self) -> bool:
        return self._state.connected

    @property
    def start_failure(self) -> str | None:
        """Why the first connection failed when :meth:`start` went on in the background."""
        return self._state.start_failure

    def stop(self) -> int:
        """Say goodbye and disconnect; return the messages lost: handed over with QoS > 0 and
        never acknowledged (``offline`` included; :attr:`abandoned` ones too), plus those dropped
        because paho's queue was full.

        The goodbye is ``offline``, retained. When the broker did not acknowledge it within the
        stop's wait (it can sit behind paho's 20 messages in flight to a slow broker, only
        queued), or it was not sent (the link looked down, perhaps while paho reconnected), the
        link ends so that the broker publishes the last will, ``offline`` too: a plain
        DISCONNECT would tell it to discard the will and keep ``online`` for a stopped agent."""
        self._state.stopping = True
        self.poll_events()
        self._acks.drain()  # acknowledged before the link went: not lost
        left = len(self._acks.pending)
        said_offline = False
        # not when it never connected or is away now: nothing can be acknowledged (the outbox, if
        # any, holds what is pending)
        linked = self._state.start_failure is None and self._state.connected
        if linked:
            left = self.flush(5.0)
            if left:
                # (with the outbox in front these are its retained status, config, health and
                # discovery messages: the predictions it forwards are counted by the outbox)
                log.warning(
                    "%d messages (QoS 1) were not acknowledged by the broker before stopping",
                    left,
                )
            info = self._client.publish(self.topics.status, "offline", qos=1, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._acks.pending.add(info.mid)
                left = self.flush(2.0)  # (counts `offline` when it was not acknowledged)
                said_offline = info.mid not in self._acks.pending
                if not said_offline:
                    log.warning(
                        "the MQTT broker did not acknowledge the status 'offline' in time; "
                        "leaving so that it publishes the last will ('offline') instead"
                    )
        self._loop_running = False
        if said_offline:
            self._client.disconnect()
        else:
            # also when the link looked down: paho may have connected again since (a plain
            # DISCONNECT would then discard the will); else this just ends its reconnect loop
            self.left_with_will = linked
            leave_with_will(self._client, self.protocol)
        self._stop_network_thread()
        close_wakeup_pair(self._client)  # paho leaves it open after loop_stop(): two leaked sockets
        return left + self.dropped + self.abandoned
