import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import OutboxError
from agent.outbox import Outbox
from agent.outbox_counts import read_counts


def _box(tmp_path: Path, **kw: object) -> Outbox:
    return Outbox(tmp_path / "state" / "outbox.db", **kw)  # type: ignore[arg-type]


def test_fifo_order_ack_and_stats(tmp_path: Path) -> None:
    box = _box(tmp_path)
    ids = [box.put("t", f"m{i}".encode(), 1, False, now=100.0 + i) for i in range(5)]
    assert ids == sorted(ids) and None not in ids
    rows = box.take(3)
    assert [r.payload for r in rows] == [b"m0", b"m1", b"m2"]
    assert [r.payload for r in box.take(10, after_id=rows[-1].id)] == [b"m3", b"m4"]
    assert box.ack(rows[0].id) and not box.ack(rows[0].id)
    st = box.stats(now=110.0)
    assert (st.length, st.bytes, st.acked, st.produced) == (4, 8, 1, 5)
    assert st.oldest_age_s == pytest.approx(9.0)


def test_survives_reopen(tmp_path: Path) -> None:
    box = _box(tmp_path)
    for i in range(3):
        box.put("t", bytes([i]), 1, False, now=1.0)
    box.ack(box.take(1)[0].id)
    box.close()
    again = _box(tmp_path)
    assert [r.payload for r in again.take(10)] == [b"\x01", b"\x02"]
    assert again.stats(now=2.0).bytes == 2


@pytest.mark.parametrize(
    ("policy", "kept", "dropped", "rejected"),
    [("drop-oldest", [b"c" * 4, b"d" * 4], 2, 0), ("reject-new", [b"a" * 4, b"b" * 4], 0, 2)],
)
def test_byte_cap(
    tmp_path: Path, policy: str, kept: list[bytes], dropped: int, rejected: int
) -> None:
    box = _box(tmp_path, max_bytes=8, policy=policy)
    for p in (b"a" * 4, b"b" * 4, b"c" * 4, b"d" * 4):
        box.put("t", p, 1, False, now=0.0)
    assert [r.payload for r in box.take(10)] == kept
    st = box.stats(now=0.0)
    assert (st.dropped_cap, st.rejected, st.bytes) == (dropped, rejected, 8)


def test_oversized_message_is_rejected(tmp_path: Path) -> None:
    box = _box(tmp_path, max_bytes=8)
    assert box.put("t", b"x" * 9, 1, False, now=0.0) is None
    assert box.stats(now=0.0).rejected == 1


def test_ttl(tmp_path: Path) -> None:
    box = _box(tmp_path, ttl_s=10.0)
    box.put("t", b"old", 1, False, now=0.0)
    box.put("t", b"new", 1, False, now=8.0)
    assert box.expire(now=15.0) == 1
    assert [r.payload for r in box.take(10)] == [b"new"]
    assert box.stats(now=15.0).dropped_ttl == 1


def test_dead_letter(tmp_path: Path) -> None:
    box = _box(tmp_path)
    rid = box.put("har/x/prediction", b"p", 1, False, now=0.0)
    assert rid is not None and box.dead(rid, "Not authorized", now=1.0)
    assert box.take(10) == []
    assert box.dead_letters() == [(rid, "har/x/prediction", "Not authorized")]
    assert box.stats(now=1.0).dead == 1


def test_damaged_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match="outbox"):
        Outbox(path)


def test_wal_and_full_sync(tmp_path: Path) -> None:
    box = _box(tmp_path)
    db = sqlite3.connect(box.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    # synchronous is per connection: the outbox's own must be FULL (2), or a power cut can lose
    # rows it reported committed (a SIGKILL cannot show it: the OS still holds them)
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert box.integrity_check() == "ok"


def test_a_message_costs_one_fsync_commit_and_one_without(tmp_path: Path) -> None:
    """SD cards: ``put`` commits with synchronous=FULL; ``ack`` with NORMAL for its own
    transaction (a power cut may undo it: a duplicate, never a loss); FULL again afterwards."""
    box = _box(tmp_path)
    seen: list[str] = []
    box._db.set_trace_callback(seen.append)
    rid = box.put("t", b"x", 1, False, 0.0)
    put_sql, seen[:] = list(seen), []
    assert rid is not None and box.ack(rid)
    ack_sql = list(seen)
    box._db.set_trace_callback(None)
    assert not any("synchronous" in q for q in put_sql)
    assert not any(q.startswith("UPDATE counters") for q in put_sql + ack_sql)
    assert ack_sql[0] == "PRAGMA synchronous=NORMAL" and ack_sql[1] == "BEGIN IMMEDIATE"
    assert ack_sql[-2:] == ["COMMIT", "PRAGMA synchronous=FULL"]
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert not box.ack(rid)  # already gone: still FULL afterwards
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_produced_and_acked_are_derived_and_survive_a_restart(tmp_path: Path) -> None:
    box = _box(tmp_path, max_bytes=10)
    ids = [box.put("t", b"abc", 1, False, float(i)) for i in range(3)]  # 9 bytes
    assert all(i is not None for i in ids)
    box.ack(ids[0])  # type: ignore[arg-type]
    box.dead(ids[1], "refused", 5.0)  # type: ignore[arg-type]
    box.put("t", b"abcdefgh", 1, False, 6.0)  # 3 + 8 > 10: drops the oldest (ids[2])
    assert box.put("t", b"x" * 11, 1, False, 7.0) is None  # over the cap alone: rejected
    st = box.stats(8.0)
    assert (st.produced, st.acked, st.dead, st.dropped_cap, st.rejected, st.length) == (
        4,
        1,
        1,
        1,
        1,
        1,
    )
    box.close()
    again = _box(tmp_path, max_bytes=10)
    st2 = again.stats(8.0)
    assert (st2.produced, st2.acked, st2.length) == (4, 1, 1)
    counts = read_counts(again.path)
    assert (counts["produced"], counts["acked"], counts["dead"], counts["length"]) == (4, 1, 1, 1)
    assert read_counts(tmp_path / "nowhere.db")["produced"] == 0
    again.close()
    # an older build reads (and goes on counting) the counters table's produced/acked rows
    db = sqlite3.connect(again.path)
    rows = dict(db.execute("SELECT name, value FROM counters WHERE name IN ('produced', 'acked')"))
    db.close()
    assert rows == {"produced": 4, "acked": 1}


def test_killed_writer_loses_nothing_committed(tmp_path: Path) -> None:
    """A process SIGKILLed while writing: every row it reported committed is there."""
    path = tmp_path / "outbox.db"
    script = (
        "import sys\nfrom agent.outbox import Outbox\n"
        f"box = Outbox({str(path)!r})\n"
        "for i in range(100000):\n"
        "    box.put('t', str(i).encode(), 1, False, now=float(i))\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 200:
            proc.kill()
            break
    proc.wait()
    proc.stdout.close()
    box = Outbox(path)
    assert box.integrity_check() == "ok"
    got = [int(r.payload) for r in box.take(1_000_000)]
    box.close()
    assert got[: last + 1] == list(range(last + 1))


def test_default_outbox_path_follows_systemd_then_xdg(tmp_path: Path) -> None:
    """Where the daemon keeps its outbox without outbox.path: systemd's StateDirectory= (the
    unit), else $XDG_STATE_HOME/har-agent, else ~/.local/state/har-agent."""
    import dataclasses

    from agent.publisher_factory import outbox_path
    from tests.agent.helpers import profile_for

    prof = profile_for()
    name = f"outbox-{prof.device.id}.db"
    assert outbox_path(prof, {"STATE_DIRECTORY": "/var/lib/har-agent:/x"}) == Path(
        "/var/lib/har-agent", name
    )
    assert outbox_path(prof, {"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "har-agent" / name
    assert outbox_path(prof, {}) == Path.home() / ".local/state/har-agent" / name
    mine = dataclasses.replace(prof, outbox=dataclasses.replace(prof.outbox, path="/srv/o.db"))
    assert outbox_path(mine, {"STATE_DIRECTORY": "/var/lib/har-agent"}) == Path("/srv/o.db")


def test_free_bytes_is_what_statvfs_says_for_the_folder(tmp_path: Path) -> None:
    import os

    from agent.outbox import free_bytes

    st = os.statvfs(tmp_path)
    expected = st.f_bavail * st.f_frsize
    for where in (tmp_path, tmp_path / "outbox.db"):  # the folder, or a file (not yet) in it
        assert abs(free_bytes(where) - expected) < 64 * 1024 * 1024  # others write meanwhile


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("room_mb", "max_mb", "cap_mb", "warned"),
    [
        (1000, 64, 64, False),  # plenty of room: the profile's cap
        (100, 64, 50, True),  # the cap would take more than half the free space: half of it
        (1, 64, 1, True),  # nearly full: never below 1 MB
    ],
)
def test_outbox_cap_stays_under_half_the_free_space(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    room_mb: int,
    max_mb: int,
    cap_mb: int,
    warned: bool,
) -> None:
    """An SD card must not fill up: the daemon's outbox cap is at most half the free space of
    its filesystem (the free space is the one input faked here)."""
    import dataclasses
    import logging

    from agent import publisher_factory
    from agent.forwarder import OutboxPublisher
    from tests.agent.helpers import profile_for

    prof = profile_for()
    outbox = dataclasses.replace(
        prof.outbox, enabled=True, path=str(tmp_path / "o.db"), max_mb=float(max_mb)
    )
    prof = dataclasses.replace(prof, outbox=outbox)
    seen: list[Path] = []

    def room(path: str | Path) -> int:
        seen.append(Path(path))
        return room_mb * MB

    monkeypatch.setattr(publisher_factory, "free_bytes", room)
    with caplog.at_level(logging.WARNING, logger="agent.publisher_factory"):
        pub = publisher_factory.make_publisher(prof, use_outbox=True)
    try:
        assert isinstance(pub, OutboxPublisher)
        assert pub.outbox.max_bytes == cap_mb * MB
        assert seen == [tmp_path]  # the filesystem that holds the outbox
        lowered = [r.getMessage() for r in caplog.records if "outbox cap lowered" in r.getMessage()]
        assert lowered == (
            [f"outbox cap lowered to {cap_mb:.1f} MB: half the free space of {tmp_path}"]
            if warned
            else []
        )
    finally:
        pub.outbox.close()


def test_read_counts_takes_any_path_and_one_snapshot(tmp_path: Path) -> None:
    """Outside readers (soak, tools) see consistent counts while the agent writes, and a path
    with '#', '?' or '%' is not cut short by SQLite's URI parsing."""
    import threading

    odd = tmp_path / "we#ird?dir%20" / "outbox.db"
    box = Outbox(odd, max_bytes=40, policy="drop-oldest")
    done = threading.Event()

    def write() -> None:
        for i in range(1500):
            rid = box.put("t", b"0123456789", 1, False, float(i))
            if rid is not None and i % 3:
                box.ack(rid)
        done.set()

    th = threading.Thread(target=write)
    th.start()
    last = (0, 0)
    reads = 0
    while not done.is_set() or reads < 5:
        c = read_counts(odd)
        assert c["acked"] >= 0 and c["length"] >= 0, c
        assert c["produced"] >= last[0] and c["acked"] >= last[1], (c, last)
        last = (c["produced"], c["acked"])
        reads += 1
    th.join()
    final = read_counts(odd)
    assert final["produced"] == 1500 == box.stats(0.0).produced
    assert final["acked"] == box.stats(0.0).acked == 1000


def test_a_new_outbox_is_private_to_its_owner(tmp_path: Path) -> None:
    """Predictions are personal data: under the common umask 022 the folder made for the outbox
    and every SQLite file in it are still the owner's alone (the service's UMask=0077 aside)."""
    old = os.umask(0o022)
    try:
        box = _box(tmp_path)
        box.put("t", b"x", 1, False, 0.0)  # creates the -wal and -shm files
        folder = tmp_path / "state"
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()}
        box.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert set(modes) >= {"outbox.db", "outbox.db-wal", "outbox.db-shm"}
    assert set(modes.values()) == {0o600}, modes


def test_an_outbox_left_world_readable_by_an_older_build_is_made_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        first = Outbox(tmp_path / "o.db")
        first.put("t", b"x", 1, False, 0.0)
        first.close()
        for f in tmp_path.iterdir():  # what a build that left the umask's modes made
            f.chmod(0o644)
        box = Outbox(tmp_path / "o.db")
        box.put("t", b"y", 1, False, 1.0)
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in tmp_path.iterdir()}
        box.close()
    finally:
        os.umask(old)
    assert "o.db" in modes and set(modes.values()) == {0o600}, modes


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_outbox_path_that_is_not_a_file_is_one_error(tmp_path: Path, kind: str) -> None:
    """A FIFO there used to hang the start (no reader); a folder gave a raw OSError."""
    import threading

    path = tmp_path / "o.db"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    got: list[BaseException] = []

    def open_it() -> None:
        try:
            Outbox(path)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            got.append(exc)

    th = threading.Thread(target=open_it, daemon=True)
    th.start()
    th.join(20)
    assert not th.is_alive(), "opening the outbox hung"
    assert len(got) == 1 and isinstance(got[0], OutboxError), got
    assert str(got[0]).startswith(f"{path}: ")


def _fill_disk(box: Outbox) -> None:
    """Simulate a full disk: the database file may not grow by one more page."""
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={pages}")


def test_a_full_disk_is_one_outbox_error_and_changes_nothing(tmp_path: Path) -> None:
    """SQLite rolls the transaction back by itself after SQLITE_FULL: the outbox's own ROLLBACK
    used to fail then, and its raw "cannot rollback - no transaction is active" hid the real
    error (a traceback in ``har-agent run``); and the byte count had already moved."""
    box = _box(tmp_path, max_bytes=60_000)
    for i in range(5):
        box.put("t", b"x" * 10_000, 1, False, now=float(i))
    _fill_disk(box)
    with pytest.raises(OutboxError, match=r"database or disk is full") as err:
        box.put("t", b"y" * 30_000, 1, False, now=9.0)  # (drop-oldest: two rows deleted first)
    assert str(err.value).startswith(f"{box.path}: ")
    st = box.stats(now=9.0)
    assert (st.length, st.bytes, st.dropped_cap, st.produced) == (5, 50_000, 0, 5)
    box._db.execute("PRAGMA max_page_count=1073741823")  # room again: the next put works
    assert box.put("t", b"y" * 30_000, 1, False, now=10.0) is not None
    st = box.stats(now=10.0)
    assert (st.length, st.bytes, st.dropped_cap) == (4, 60_000, 2)
    assert st.bytes == sum(len(r.payload) for r in box.take(100))
    assert box.integrity_check() == "ok"
    box.close()


class _CommitFails:
    """The outbox's connection, but every COMMIT fails (the transaction stays open)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


@pytest.mark.parametrize("write", ["put over the cap", "ack", "dead", "expire"])
def test_a_failed_commit_leaves_rows_and_byte_count_as_they_were(
    tmp_path: Path, write: str
) -> None:
    """The byte count moves only once a transaction has committed (it moved before COMMIT, so
    a failed write shifted it for good: the cap then held too much or too little)."""
    box = _box(tmp_path, max_bytes=30, ttl_s=5.0)
    ids = [box.put("t", b"x" * 10, 1, False, now=float(i)) for i in range(3)]
    real = box._db
    box._db = _CommitFails(real)  # type: ignore[assignment]
    with pytest.raises(OutboxError, match=r"cannot write the outbox \(disk I/O error\)"):
        if write == "put over the cap":
            box.put("t", b"y" * 5, 1, False, now=3.0)  # (drops a 10-byte row first)
        elif write == "ack":
            box.ack(ids[0] or 0)
        elif write == "dead":
            box.dead(ids[0] or 0, "Not authorized", now=3.0)
        else:
            box.expire(now=100.0)
    box._db = real
    assert not real.in_transaction  # rolled back
    st = box.stats(now=3.0)
    assert (st.length, st.bytes, st.dropped_cap, st.dropped_ttl, st.dead) == (3, 30, 0, 0, 0)
    assert box.ack(ids[0] or 0) and box.stats(now=3.0).bytes == 20
    box.close()
