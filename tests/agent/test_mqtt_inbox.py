"""The bounded inbox of incoming MQTT messages (agent/mqtt_inbox.py)."""

from __future__ import annotations

import logging

import pytest

from agent.mqtt_inbox import Inbox
from agent.publishers import Command

HA = "homeassistant/status"


def test_bound_truncation_and_order() -> None:
    box = Inbox(limit=3, keep_bytes=5)
    for i in range(5):
        box.put("cmd", f"{i}-payload".encode())
    assert box.dropped == 2 and box.qsize() == 3
    got = box.take(2) + box.take(10)
    assert [c.payload for c in got] == [b"0-pay", b"1-pay", b"2-pay"]
    box.put("cmd", b"again")  # room again once taken
    assert [c.payload for c in box.take(1)] == [b"again"]


def test_a_status_message_is_neither_dropped_nor_held_behind_a_flood() -> None:
    """Home Assistant's online/offline: only the latest is kept, beside the bound, and handed
    over first, even when the caller takes no commands (their replies have no room)."""
    box = Inbox(limit=3, keep_bytes=100, latest_topics=(HA,))
    for i in range(10):
        box.put("cmd", str(i).encode())
    box.put(HA, b"offline")
    box.put(HA, b"online")
    assert box.dropped == 7
    assert box.qsize() == 4
    first = box.take(0)
    assert [(c.topic, c.payload) for c in first] == [(HA, b"online")]
    assert [c.payload for c in box.take(2)] == [b"0", b"1"]
    box.put(HA, b"offline")
    assert [(c.topic, c.payload) for c in box.take(5)] == [(HA, b"offline"), ("cmd", b"2")]


def test_drops_are_logged_once_when_they_start_and_once_when_they_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box = Inbox(limit=4, keep_bytes=10)
    with caplog.at_level(logging.INFO, logger="agent.mqtt"):
        for _ in range(10):
            box.put("cmd", b"x")
        box.log_drops()
        box.log_drops()
        box.take(1)
        box.log_drops()  # still 3 waiting: over half full, no "taken again" yet
        box.take(2)
        box.log_drops()
        box.log_drops()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "dropping further commands" in lines[0]
    assert "commands are taken again (6 incoming messages dropped so far)" in lines[1]


def test_status_messages_taken_do_not_widen_the_bound() -> None:
    """Each latest-topic message taken was counted as a command taken, so every Home Assistant
    status let one more command wait beyond the bound (a status flood: no bound at all)."""
    inbox = Inbox(2, 100, (HA,))
    for _ in range(5):
        inbox.put(HA, b"online")
        assert inbox.take(0) == [Command(HA, b"online")]
    for i in range(10):
        inbox.put("har/x/cmd", b"%d" % i)
    assert inbox.qsize() == 2 and inbox.dropped == 8
    assert [c.payload for c in inbox.take(10)] == [b"0", b"1"]
