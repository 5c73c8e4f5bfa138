"""A flood on the command topic against a real mosquitto: predictions keep coming, the outbox holds
predictions alone, what waits in memory is bounded, and the agent answers later commands."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.commands import MAX_COMMAND_BYTES, MAX_COMMANDS_PER_STEP
from agent.forwarder import OutboxPublisher
from agent.mqtt import MAX_REPLIES_IN_FLIGHT, MqttPublisher
from agent.mqtt_inbox import MAX_INBOX
from agent.mqtt_settings import MAX_PACKET_BYTES, MqttSettings
from agent.outbox import Outbox
from agent.outbox_counts import read_counts
from agent.payload import Topics
from agent.profile import Profile, with_device
from agent.publishers import Command, MemoryPublisher
from agent.wiring import Agent, RunOptions, build_agent
from tests.agent.helpers import Subscriber, profile_for
from tests.agent.reliability import AgentThread
from tests.conftest import Broker

DEADLINE_S = 60.0
"""Generous: how long any one wait may take (none is a timing assertion)."""


def _device(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _sender(port: int) -> mqtt.Client:
    """A client that sends commands, connected (CONNACK received) when returned."""
    connected = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)  # unbounded: the flood is queued here, not refused
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(DEADLINE_S):
        _close(client)
        raise TimeoutError("the command sender got no CONNACK")
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _wait(cond: Any, timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


class Stream:
    """Every message under ``har/<device>/`` in arrival order: predictions and replies."""

    def __init__(self, port: int, device: str) -> None:
        self.sub = Subscriber(port, f"har/{device}/#")

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.sub._lock:
            msgs = list(self.sub.messages)
        out = []
        for topic, payload, _ in msgs:
            if topic.endswith("/prediction"):
                out.append(("prediction", json.loads(payload)))
            elif topic.endswith("/cmd/response"):
                out.append(("reply", json.loads(payload)))
        return out

    def predictions(self) -> int:
        return len(self.sub.on("/prediction"))

    def replies(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.sub.on("/cmd/response")]

    def close(self) -> None:
        self.sub.close()


def _profile(port: int, device: str, outbox: Path | None) -> Profile:
    return with_device(profile_for(port, outbox=outbox), device)


def _start(prof: Profile, speed: float) -> tuple[Agent, AgentThread, threading.Event]:
    stop = threading.Event()
    agent = build_agent(prof, options=RunOptions(speed=speed, loop=True, monitor=False), stop=stop)
    return agent, AgentThread(agent), stop


def _answered_later(sender: mqtt.Client, stream: Stream, device: str) -> dict[str, Any] | None:
    """Send a ping now and then until one is answered (one sent while the inbox is still full
    would be dropped); that answer."""
    for k in range(int(DEADLINE_S)):
        rid = f"later-{k}"
        sender.publish(f"har/{device}/cmd", json.dumps({"cmd": "ping", "id": rid}), qos=1)
        if _wait(
            lambda: any(str(r.get("id", "")).startswith("later-") for r in stream.replies()), 1.0
        ):
            return next(r for r in stream.replies() if str(r.get("id", "")).startswith("later-"))
    return None


@pytest.mark.integration
def test_a_ping_flood_neither_stalls_predictions_nor_fills_the_outbox(
    broker: Broker, tmp_path: Path
) -> None:
    device = _device("flood")
    outbox = tmp_path / "outbox.db"
    stream = Stream(broker.port, device)
    prof = _profile(broker.port, device, outbox)
    agent, th, stop = _start(prof, speed=10.0)
    sender = _sender(broker.port)
    try:
        fwd = agent.publisher
        assert isinstance(fwd, OutboxPublisher)
        assert _wait(lambda: stream.predictions() >= 3), "no predictions before the flood"
        # the flood: bursts of pings, far faster than the agent answers them, until a few
        # thousand are out and several predictions have arrived since the first reply
        sent = 0

        def predictions_since_first_reply() -> int:
            seen_reply, n = False, 0
            for kind, _ in stream.events():
                seen_reply = seen_reply or kind == "reply"
                n += seen_reply and kind == "prediction"
            return n

        deadline = time.monotonic() + DEADLINE_S
        while sent < 20000 and (sent < 3000 or predictions_since_first_reply() < 5):
            if time.monotonic() > deadline:
                break
            for _ in range(200):
                sender.publish(f"har/{device}/cmd", json.dumps({"cmd": "ping", "id": sent}))
                sent += 1
            time.sleep(0.01)
        later = _answered_later(sender, stream, device)
        assert later is not None and later["ok"] is True, "a later command went unanswered"

        events = stream.events()
        flood = [
            i
            for i, (kind, body) in enumerate(events)
            if kind == "reply" and isinstance(body.get("id"), int)
        ]
        assert flood, "no ping was answered"
        during = [
            body["seq"] for kind, body in events[flood[0] : flood[-1]] if kind == "prediction"
        ]
        # predictions kept coming while the flood was answered, in order
        assert len(during) >= 3, f"{len(during)} predictions among {len(flood)} flood replies"
        assert during == sorted(during)
        # and never more replies between two predictions than the per-step cap allows (twice
        # over, for predictions that wait for the outbox window): steps per hop, the cap each
        pipe = agent.pipeline
        chunk_s = prof.source.chunk_samples / pipe.source.header.sample_rate_hz
        steps_per_hop = math.ceil(pipe._front.hop_s / chunk_s) + 1
        bound = 2 * MAX_COMMANDS_PER_STEP * steps_per_hop
        run = worst = 0
        for kind, _ in events[flood[0] : flood[-1] + 1]:
            run = run + 1 if kind == "reply" else 0
            worst = max(worst, run)
        assert worst <= bound, f"{worst} replies in a row (bound {bound})"
        assert fwd.link.inbox_dropped > 0  # type: ignore[attr-defined]
        # the metrics say so too (the metrics command answers with what the topic carries)
        sender.publish(f"har/{device}/cmd", json.dumps({"cmd": "metrics", "id": "m"}), qos=1)
        assert _wait(lambda: any(b.get("id") == "m" for k, b in stream.events() if k == "reply"))
        reply = next(b for k, b in stream.events() if k == "reply" and b.get("id") == "m")
        assert reply["metrics"]["commands"]["inbox_dropped"] > 0
    finally:
        _close(sender)
        stop.set()
        th.join(60)
        stream.close()
    assert not th.is_alive()
    # the outbox took the predictions and nothing else: no reply was ever committed to disk
    counts = read_counts(outbox)
    assert counts["produced"] == th.windows, counts


@pytest.mark.integration
def test_an_oversized_command_never_reaches_the_agent(broker: Broker, tmp_path: Path) -> None:
    """MQTT v5: the CONNECT's Maximum Packet Size makes the broker drop a 1 MB command; one over
    4 KiB but under the packet limit is still answered with the reason."""
    device = _device("big")
    stream = Stream(broker.port, device)
    agent, th, stop = _start(_profile(broker.port, device, tmp_path / "outbox.db"), speed=10.0)
    sender = _sender(broker.port)
    try:
        fwd = agent.publisher
        assert isinstance(fwd, OutboxPublisher)
        assert _wait(lambda: stream.predictions() >= 1)
        assert fwd.link.protocol == mqtt.MQTTv5  # type: ignore[attr-defined]
        topic = f"har/{device}/cmd"
        huge = json.dumps({"cmd": "ping", "id": "huge", "pad": "x" * 1_000_000}).encode()
        big = json.dumps({"cmd": "ping", "id": "big", "pad": "x" * 8000}).encode()
        assert len(big) < MAX_PACKET_BYTES - 100 < len(huge)
        for payload in (huge, big, b'{"cmd": "ping", "id": "small"}'):
            sender.publish(topic, payload, qos=1).wait_for_publish(DEADLINE_S)
        assert _wait(lambda: len(stream.replies()) >= 2)
        before = stream.predictions()
        assert _wait(lambda: stream.predictions() >= before + 3), "predictions stopped"
        replies = stream.replies()
        # in order from one sender: an answer to the 1 MB command would have come first
        assert replies[0] == {
            "ok": False,
            "error": f"command larger than {MAX_COMMAND_BYTES} bytes",
        }
        assert replies[1:] == [{"ok": True, "cmd": "ping", "id": "small"}]
        assert th.is_alive()
    finally:
        _close(sender)
        stop.set()
        th.join(60)
        stream.close()
    assert not th.is_alive()


@pytest.mark.integration
def test_the_inbox_is_bounded_and_drops_are_logged_once(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The link alone, polled by hand: while nothing polls, at most MAX_INBOX messages wait; the
    rest are dropped in paho's callback, counted, and logged (from poll) once when dropping
    starts and once when it stops; a poll hands over at most MAX_COMMANDS_PER_STEP."""
    device = _device("inbox")
    settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id=f"har-agent-{device}")
    link = MqttPublisher(settings, Topics("har", device))
    link.start()
    sender = _sender(broker.port)
    caplog.set_level(logging.INFO, logger="agent.mqtt")
    flood = 3 * MAX_INBOX
    try:
        for i in range(flood):
            sender.publish(f"har/{device}/cmd", json.dumps({"cmd": "ping", "id": i}), qos=1)

        # all delivered: waiting, or dropped (counted on paho's thread)
        def arrived() -> int:
            return getattr(link, "inbox_dropped", 0) + link._inbox.qsize()

        assert _wait(lambda: arrived() >= flood), f"{arrived()} of {flood} arrived"
        got: list[Command] = []
        sizes = []
        for _ in range(2 * MAX_INBOX // MAX_COMMANDS_PER_STEP):
            batch = link.poll()
            sizes.append(len(batch))
            got += batch
        assert max(sizes) == MAX_COMMANDS_PER_STEP
        assert [json.loads(c.payload)["id"] for c in got] == list(range(MAX_INBOX))
        assert link.inbox_dropped == flood - MAX_INBOX
        messages = [r.getMessage() for r in caplog.records if r.name == "agent.mqtt"]
        dropping = [m for m in messages if "dropping further commands" in m]
        again = [m for m in messages if "commands are taken again" in m]
        assert len(dropping) == 1 and len(again) == 1, messages
        assert f"({flood - MAX_INBOX} incoming messages dropped so far)" in again[0]
        # later commands are taken; what waits is cut to just over the command size limit
        sender.publish(f"har/{device}/cmd", b'{"cmd":"ping"}' + b" " * 10000, qos=1)
        later: list[Command] = []
        assert _wait(lambda: bool(later.extend(link.poll()) or later))
        assert len(later[0].payload) == MAX_COMMAND_BYTES + 1
        assert sum("dropping" in r.getMessage() for r in caplog.records) == 1
    finally:
        _close(sender)
        link.stop()


def test_commands_wait_while_their_replies_would_not_fit() -> None:
    """While MAX_REPLIES_IN_FLIGHT replies wait for their PUBACK, poll hands over no command (it
    waits in the inbox); as acknowledgements come, commands flow again."""
    settings = MqttSettings(host="127.0.0.1", port=1, client_id="har-agent-reply-room")
    link = MqttPublisher(settings, Topics("har", "reply-room"))  # never started

    class Msg:
        topic = "har/reply-room/cmd"
        payload = b'{"cmd":"ping"}'
        retain = False

    for _ in range(3):
        link._on_message(None, None, Msg())  # type: ignore[arg-type]
    link._state.connected = True  # as if up, with every reply slot taken
    link._acks.replies = set(range(1, MAX_REPLIES_IN_FLIGHT + 1))
    assert link.poll() == []
    link._acks.put((1, 0, "Success"))
    link._acks.put((2, 0, "Success"))
    assert len(link.poll()) == 2
    assert link.reply("har/reply-room/cmd/response", b"{}") is False  # the link is not really up
    assert link.replies_dropped == 1


def test_commands_beyond_the_step_cap_wait_for_the_next_step() -> None:
    pub = MemoryPublisher()
    n = 2 * MAX_COMMANDS_PER_STEP + 5
    pub.commands += [Command("har/demo/cmd", b'{"cmd":"ping","id":%d}' % i) for i in range(n)]
    agent = build_agent(
        profile_for(), options=RunOptions(speed=0, loop=False, monitor=False), publisher=pub
    )
    chunks = iter(agent.pipeline.source.chunks())
    answered = []
    for _ in range(4):
        agent.pipeline.process(next(chunks))
        answered.append(len(pub.payloads("/cmd/response")))
    assert answered == [MAX_COMMANDS_PER_STEP, 2 * MAX_COMMANDS_PER_STEP, n, n]
    ids = [json.loads(p)["id"] for p in pub.payloads("/cmd/response")]
    assert ids == list(range(n))


def test_replies_bypass_the_outbox_and_are_dropped_while_the_link_is_down(
    tmp_path: Path,
) -> None:
    settings = MqttSettings(host="127.0.0.1", port=1, client_id="har-agent-replies-down")
    link = MqttPublisher(settings, Topics("har", "replies-down"))  # never started: down
    fwd = OutboxPublisher(Outbox(tmp_path / "o.db"), link)
    assert fwd.reply("har/replies-down/cmd/response", b'{"ok":true,"cmd":"ping"}') is False
    assert link.replies_dropped == 1
    assert fwd.stats().length == 0 and fwd.stats().produced == 0
    fwd.outbox.close()


def test_pipeline_replies_through_the_live_link(tmp_path: Path) -> None:
    """The pipeline hands replies to ``reply`` (live link), predictions to ``publish``."""

    class Recording(MemoryPublisher):
        replies: list[tuple[str, bytes]]

        def reply(self, topic: str, payload: bytes) -> bool:
            self.replies.append((topic, payload))
            return True

    pub = Recording()
    pub.replies = []
    pub.commands.append(Command("har/demo/cmd", b'{"cmd":"ping","id":1}'))
    build_agent(profile_for(), options=RunOptions(speed=0, loop=False), publisher=pub).run()
    assert pub.replies == [("har/demo/cmd/response", b'{"ok":true,"cmd":"ping","id":1}')]
    assert not pub.payloads("/cmd/response") and pub.payloads("/prediction")


def test_home_assistant_status_is_not_held_behind_queued_commands() -> None:
    """HA's online (re-send discovery) is handled in the step it arrives, past the command cap
    (the handler is the one wiring registers for a real broker)."""
    pub = MemoryPublisher()
    n = 3 * MAX_COMMANDS_PER_STEP
    pub.commands += [Command("har/demo/cmd", b'{"cmd":"ping","id":%d}' % i) for i in range(n)]
    pub.commands.append(Command("homeassistant/status", b"online"))
    agent = build_agent(
        profile_for(), options=RunOptions(speed=0, loop=False, monitor=False), publisher=pub
    )
    seen: list[bytes] = []
    agent.pipeline.topic_handlers["homeassistant/status"] = seen.append
    agent.pipeline.process(next(iter(agent.pipeline.source.chunks())))
    assert seen == [b"online"]  # in this step, though 30 commands came before it
    assert len(pub.payloads("/cmd/response")) == MAX_COMMANDS_PER_STEP
