"""Store-and-forward logic against a scripted link (the real broker is in the integration tests)."""

import dataclasses
import logging
import sqlite3
from pathlib import Path

import pytest

from agent.forwarder import OutboxPublisher
from agent.outbox import Outbox
from agent.publishers import Command


class ScriptedLink:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[int, str, bytes]] = []
        self.direct: list[tuple[str, bytes, int, bool]] = []
        self.acks: list[tuple[int, int, str]] = []
        self.full = False
        self.inbox: list[Command] = []
        self.event_polls = 0
        self.lost_at_stop = 0
        self.epoch = 0
        self._mid = 0

    def replace_client(self) -> None:
        """What the MQTT link does when it falls back to v3.1.1 after a working session: a new
        client, whose mids start at 1 again; the old client's PUBACKs are gone."""
        self.epoch += 1
        self._mid = 0
        self.acks.clear()

    def start(self) -> None:
        pass

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        if self.full:
            return None
        self._mid += 1
        self.sent.append((self._mid, topic, payload))
        return self._mid

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.direct.append((topic, payload, qos, retain))

    def take_acks(self) -> list[tuple[int, int, str]]:
        out, self.acks = self.acks, []
        return out

    def poll(self) -> list[Command]:
        out, self.inbox = self.inbox, []
        return out

    def poll_events(self) -> None:
        self.event_polls += 1

    def stop(self) -> int:
        return self.lost_at_stop

    def counters(self) -> dict[str, dict[str, int | float | None]]:
        return {"commands": {"inbox_dropped": 7}}

    def ack_all(self, code: int = 0) -> None:
        self.acks += [
            (mid, code, "Success" if code < 0x80 else "Not authorized") for mid, _, _ in self.sent
        ]


def _fwd(tmp_path: Path, window: int = 4) -> tuple[OutboxPublisher, ScriptedLink]:
    link = ScriptedLink()
    clock = iter(range(1_000_000))
    return OutboxPublisher(
        Outbox(tmp_path / "o.db"), link, window=window, wall=lambda: float(next(clock))
    ), link


def test_window_limits_in_flight(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path, window=3)
    for i in range(10):
        fwd.publish("t", str(i).encode())
    assert [p for _, _, p in link.sent] == [b"0", b"1", b"2"]
    link.acks.append((1, 0, "Success"))
    fwd.poll()
    assert [p for _, _, p in link.sent] == [b"0", b"1", b"2", b"3"]
    assert fwd.stats().length == 9


def test_success_codes_delete_refusals_dead_letter(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path)
    for i in range(3):
        fwd.publish("t", str(i).encode())
    link.acks += [
        (1, 0x00, "Success"),
        (2, 0x10, "No matching subscribers"),
        (3, 0x87, "Not authorized"),
    ]
    fwd.poll()
    st = fwd.stats()
    assert (st.length, st.acked, st.dead) == (0, 2, 1)
    assert fwd.outbox.dead_letters()[0][2] == "Not authorized (0x87)"
    # a refused message is not sent again
    fwd.poll()
    assert len(link.sent) == 3


def test_nothing_is_sent_while_down_and_backlog_goes_in_order(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path, window=2)
    link.connected = False
    for i in range(5):
        fwd.publish("t", str(i).encode())
    assert link.sent == []
    link.connected = True
    for _ in range(5):
        fwd.poll()
        link.ack_all()
    fwd.poll()
    assert [p for _, _, p in link.sent] == [b"0", b"1", b"2", b"3", b"4"]
    assert fwd.stats().length == 0


def test_restart_resends_unacknowledged_rows(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path, window=10)
    for i in range(4):
        fwd.publish("t", str(i).encode())
    link.acks.append((1, 0, "Success"))
    fwd.poll()
    fwd.outbox.close()  # the process dies here: rows 1..3 were sent but never acknowledged
    fwd2, link2 = _fwd(tmp_path, window=10)
    fwd2.start()
    assert [p for _, _, p in link2.sent] == [b"1", b"2", b"3"]


def test_full_paho_queue_keeps_rows(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path)
    link.full = True
    fwd.publish("t", b"x")
    assert link.sent == [] and fwd.stats().length == 1
    link.full = False
    fwd.poll()
    assert [p for _, _, p in link.sent] == [b"x"]


def test_qos0_and_retained_bypass(tmp_path: Path) -> None:
    fwd, link = _fwd(tmp_path)
    fwd.publish("s", b"online", qos=1, retain=True)
    fwd.publish("q", b"x", qos=0)
    assert [d[0] for d in link.direct] == ["s", "q"] and fwd.stats().length == 0


def test_window_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OutboxPublisher(Outbox(tmp_path / "o.db"), ScriptedLink(), window=0)


def test_stop_without_a_broker_does_not_wait_for_one(tmp_path: Path) -> None:
    """What is pending is on disk already: with the broker away, stopping does not sit out the
    flush timeout (Ctrl-C used to hang 5 s)."""
    fwd, link = _fwd(tmp_path)
    fwd.publish("har/x/prediction", b"{}")
    link.connected = False
    assert fwd.stop() == 0
    assert link.event_polls == 1  # one look, no waiting loop
    again = Outbox(tmp_path / "o.db")  # stop closed it
    assert again.stats(0).length == 1  # kept for the next start
    again.close()


def test_commands_that_arrive_during_a_flush_wait_for_the_next_poll(tmp_path: Path) -> None:
    """``flush`` looks at the link's connection and PUBACKs only: it used to call the link's
    ``poll`` and throw away the commands it returned, which were then never answered."""
    fwd, link = _fwd(tmp_path)
    fwd.publish("t", b"x")
    ping = Command("har/x/cmd", b'{"cmd":"ping","id":1}')
    link.inbox.append(ping)
    link.ack_all()
    assert fwd.flush(5.0) == 0  # the broker took the row
    assert link.inbox == [ping]  # still the link's, not taken
    assert fwd.poll() == [ping]  # handed out as usual
    assert fwd.poll() == []
    fwd.outbox.close()


def test_stop_returns_what_the_link_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Retained status and QoS 0 messages go around the outbox: those the link could not deliver
    are lost, and ``stop`` says how many, as ``MqttPublisher.stop`` does (it said 0 whatever the
    link said). Rows left on disk are not lost."""
    fwd, link = _fwd(tmp_path)
    fwd.publish("har/x/prediction", b"{}")  # stays on disk: the link is down
    link.connected = False
    link.lost_at_stop = 2
    with caplog.at_level(logging.INFO, logger="agent.forwarder"):
        assert fwd.stop() == 2
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "outbox: 1 messages stay on disk and will be sent after the next start"),
        (
            logging.WARNING,
            "2 messages that did not go through the outbox (retained status, QoS 0, predictions "
            "it could not store) were not delivered to the MQTT broker",
        ),
    ]
    again = Outbox(tmp_path / "o.db")  # closed, with the row kept
    assert again.stats(0).length == 1
    again.close()


def _fill_disk(box: Outbox) -> None:
    """Simulate a full disk: the outbox's file may not grow by one more page."""
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={pages}")


def test_a_full_disk_is_logged_and_the_agent_runs_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A prediction the outbox cannot store (it raised the OutboxError into the pipeline, which
    ended the daemon) goes straight to the live link while it is up, or is dropped and counted;
    one warning when it starts, one line when it clears; stop counts the dropped ones as lost."""
    fwd, link = _fwd(tmp_path)
    fwd.publish("t", b"old")  # on disk (sent, not acknowledged yet)
    _fill_disk(fwd.outbox)
    with caplog.at_level(logging.INFO, logger="agent.forwarder"):
        for i in range(3):
            fwd.publish("t", b"live%d" % i + b"x" * 8192)  # connected: straight to the link
        link.connected = False
        fwd.publish("t", b"lost" + b"x" * 8192)  # down too: dropped, counted
        link.connected = True
        link.ack_all()
        fwd.poll()  # a PUBACK for the row on disk is still recorded (a delete needs no room)
        fwd.outbox._db.execute("PRAGMA max_page_count=1073741823")  # room again
        fwd.publish("t", b"new")
    assert [d[1][:5] for d in link.direct] == [b"live0", b"live1", b"live2"]
    assert all(d[2] == 1 and not d[3] for d in link.direct)  # QoS 1, not retained
    assert (fwd.unstored_sent, fwd.unstored_dropped) == (3, 1)
    st = fwd.stats()
    assert (st.produced, st.acked, st.length) == (2, 1, 1)  # "old" delivered, "new" on disk
    assert [p for _, _, p in link.sent] == [b"old", b"new"]
    path = fwd.outbox.path
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"{path}: cannot write the outbox (database or disk is full); the agent runs on: "
            "until the outbox can be written again, predictions go straight to the MQTT broker "
            "while it is connected, and are dropped (counted) while it is not",
        ),
        (
            logging.INFO,
            "the outbox can be written again (meanwhile 3 predictions went straight to the MQTT "
            "broker, 1 were dropped)",
        ),
    ]
    link.ack_all()
    assert fwd.stop() == 1  # the dropped prediction: neither delivered nor kept


class _CommitFails:
    """The outbox's connection, but every COMMIT fails (a disk that refuses writes)."""

    def __init__(self, db: object) -> None:
        self._db = db

    def execute(self, sql: str, *args: object) -> object:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_a_puback_or_expiry_the_outbox_cannot_record_leaves_the_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``poll`` records PUBACKs and expires rows: when the outbox cannot be written, the rows
    stay on disk (sent again after a restart: a duplicate, never a loss), one warning, and the
    pipeline's ``poll`` does not raise."""
    fwd, link = _fwd(tmp_path)
    for i in range(2):
        fwd.publish("t", str(i).encode())
    link.acks += [(1, 0, "Success"), (2, 0x87, "Not authorized")]
    real = fwd.outbox._db
    fwd.outbox._db = _CommitFails(real)  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="agent.forwarder"):
        fwd.poll()  # ack, dead letter and expiry all fail
        fwd.poll()
    fwd.outbox._db = real
    st = fwd.stats()
    assert (st.length, st.acked, st.dead, st.dropped_ttl) == (2, 0, 0, 0)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "disk I/O error" in caplog.records[0].getMessage()
    fwd.outbox.close()


def test_stop_closes_the_outbox_and_records_its_counters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's stop closes the outbox, which writes produced/acked for older builds."""
    import sqlite3

    fwd, link = _fwd(tmp_path)
    for i in range(3):
        fwd.publish("t", str(i).encode())
    link.ack_all()
    fwd.poll()
    with caplog.at_level(logging.WARNING):
        fwd.stop()
        db = sqlite3.connect(tmp_path / "o.db")
        rows = dict(
            db.execute("SELECT name, value FROM counters WHERE name IN ('produced', 'acked')")
        )
        db.close()
        fwd.outbox.close()  # a second close does nothing, and says nothing
    assert rows == {"produced": 3, "acked": 3}
    assert not [r for r in caplog.records if "counters" in r.getMessage()]


def test_poll_drops_rows_past_the_ttl_while_the_link_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox's TTL is applied by the forwarder's ``poll``: with the broker away for longer
    than the TTL, the rows that are too old go (counted, one warning), the younger ones stay."""
    link = ScriptedLink()
    link.connected = False  # down the whole time: nothing is sent, nothing acknowledged
    now = [1000.0]
    fwd = OutboxPublisher(Outbox(tmp_path / "o.db", ttl_s=10), link, wall=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="agent.forwarder"):
        for i in range(3):
            fwd.publish("t", str(i).encode())  # created at 1000
        now[0] = 1005.0
        fwd.poll()  # expiry runs, but nothing is older than the TTL yet
        assert fwd.stats().dropped_ttl == 0 and caplog.records == []
        now[0] = 1065.0  # the next expiry is due (every 60 s)
        fwd.publish("t", b"young")
        now[0] = 1070.0  # the first three are 70 s old, the young one 5 s
        for _ in range(3):
            fwd.poll()
            now[0] += 1.0
    st = fwd.stats()
    assert (st.dropped_ttl, st.length, st.acked) == (3, 1, 0)
    assert link.sent == []
    assert [r.payload for r in fwd.outbox.take(10)] == [b"young"]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("agent.forwarder", logging.WARNING, "outbox: 3 messages older than the TTL were dropped")
    ]
    fwd.outbox.close()


@pytest.mark.parametrize(("ttl_h", "ttl_s"), [(0.5, 1800.0), (168.0, 604800.0), (0.0, 0.0)])
def test_factory_gives_the_outbox_the_profiles_ttl_in_seconds(
    tmp_path: Path, ttl_h: float, ttl_s: float
) -> None:
    """``outbox.ttl_h`` is in hours; the outbox counts seconds (0 = keep forever)."""
    from agent.publisher_factory import make_publisher
    from tests.agent.helpers import profile_for

    prof = profile_for(outbox=tmp_path / "o.db")
    prof = dataclasses.replace(prof, outbox=dataclasses.replace(prof.outbox, ttl_h=ttl_h))
    pub = make_publisher(prof, use_outbox=True)
    assert isinstance(pub, OutboxPublisher)
    box = pub.outbox
    try:
        assert box.ttl_s == ttl_s
        box.put("t", b"x", 1, False, now=0.0)
        if ttl_s:
            assert box.expire(ttl_s - 1.0) == 0  # not yet
            assert box.expire(ttl_s + 1.0) == 1
        else:
            assert box.expire(1e9) == 0  # kept forever
        assert box.stats(0.0).length == (0 if ttl_s else 1)
    finally:
        box.close()


def test_a_puback_the_outbox_cannot_record_is_kept_and_recorded_when_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed ack (full disk) dropped the row from the in-flight map while it stayed on disk
    behind the send cursor: never recorded in that run, counted as waiting by ``flush`` (stop
    waited its 5 s), and sent again after the next start although delivered. Now the row is
    remembered: not re-sent, not waited for, and recorded once a write works again."""
    fwd, link = _fwd(tmp_path)
    for i in range(3):
        fwd.publish("t", str(i).encode())
    link.acks += [(1, 0, "Success"), (2, 0x87, "Not authorized"), (3, 0, "Success")]
    real = fwd.outbox._db
    fwd.outbox._db = _CommitFails(real)  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="agent.forwarder"):
        fwd.poll()  # the ack and the dead letter fail
        link.connected = False
        fwd.poll()
        link.connected = True  # a fresh link: sending starts again from the oldest row
        fwd.poll()
        assert [p for _, _, p in link.sent] == [b"0", b"1", b"2"]  # nothing sent twice
        assert fwd.flush(0.5) == 0  # delivered: nothing to wait for
        fwd.outbox._db = real  # room again
        fwd.poll()
    st = fwd.stats()
    assert (st.length, st.acked, st.dead) == (0, 2, 1)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert "broker refused message 2" in caplog.records[1].getMessage()
    fwd.stop()


def test_stop_records_the_pubacks_it_could_not_record_before(tmp_path: Path) -> None:
    """At stop the acks not written yet are tried once more: no duplicate after the restart."""
    fwd, link = _fwd(tmp_path)
    for i in range(2):
        fwd.publish("t", str(i).encode())
    link.ack_all()
    real = fwd.outbox._db
    fwd.outbox._db = _CommitFails(real)  # type: ignore[assignment]
    fwd.poll()
    fwd.outbox._db = real
    fwd.link.acks = []  # (nothing new arrives)
    fwd.stop()
    again = Outbox(tmp_path / "o.db")
    assert again.stats(0).length == 0  # nothing to send again after the next start
    again.close()


def test_counters_give_the_links_sections_then_the_outbox(tmp_path: Path) -> None:
    """What the metrics topic carries of the daemon's publisher (docs/mqtt.md, "Metrics")."""
    fwd, link = _fwd(tmp_path, window=2)
    for i in range(5):
        fwd.publish("har/d/prediction", b"%d" % i, qos=1)
    counters = fwd.counters()
    assert list(counters) == ["commands", "outbox"]
    assert counters["commands"] == {"inbox_dropped": 7}
    box = counters["outbox"]
    assert (box["length"], box["inflight"], box["dead"], box["dropped_cap"]) == (5, 2, 0, 0)
    assert box["bytes"] == 5 and box["oldest_age_s"] is not None
    fwd.outbox.close()


def test_a_replaced_client_gets_the_rows_in_flight_again(tmp_path: Path) -> None:
    """The link fell back to MQTT v3.1.1 after a working session (a new client numbering its
    messages from 1): the rows in flight on the old client are handed to the new one again,
    oldest first, and the new client's PUBACKs settle the rows it was given, not the rows the
    old client had under the same mids."""
    fwd, link = _fwd(tmp_path, window=4)
    for i in range(6):
        fwd.publish("har/d/prediction", b"%d" % i)
    assert [p for _, _, p in link.sent] == [b"0", b"1", b"2", b"3"]  # mids 1-4
    link.acks = [(1, 0, "Success")]
    fwd.poll()  # row 0 delivered; row 4 goes out as mid 5
    link.replace_client()
    link.sent.clear()
    fwd.poll()
    assert link.sent == [
        (1, "har/d/prediction", b"1"),
        (2, "har/d/prediction", b"2"),
        (3, "har/d/prediction", b"3"),
        (4, "har/d/prediction", b"4"),
    ]
    link.acks = [(1, 0, "Success"), (2, 0, "Success")]
    fwd.poll()
    assert [r.payload for r in fwd.outbox.take(10)] == [b"3", b"4", b"5"]
    assert fwd.stats().acked == 3
