"""Disk-backed outbox: predictions are committed to SQLite before they count as produced, and leave
it only when the broker has acknowledged them.

    produce ──put()──► outbox (WAL, synchronous=FULL) ──take()──► publisher ──PUBACK ok──► ack()
                          │  cap / TTL: drop-oldest or reject-new, counted     └─refused──► dead()
                          └─ on start: unacknowledged rows are sent again, oldest first

Writes are kept few, for SD cards: a message costs one fsync'd commit (``put``: the row and the
table's id sequence) and one commit that is not fsync'd (``ack``: ``synchronous=NORMAL`` for that
transaction, which WAL keeps consistent; a power cut may undo an ack, so the message is sent
again: a duplicate, which at-least-once allows, never a loss; the next ``put``'s fsync makes it
durable anyway). ``produced`` and ``acked`` are not counted per message: ``produced`` is the id
sequence's value (every row ever inserted), ``acked`` what is neither queued nor dropped nor dead.

The store knows nothing about MQTT: it keeps rows, their order, caps and counters. The forwarding
logic (how many in flight, what a reason code means) lives in :mod:`agent.forwarder`. Its write
transaction is :mod:`agent.outbox_transaction`, its counters (and :func:`read_counts
<agent.outbox_counts.read_counts>` for another process) :mod:`agent.outbox_counts`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.errors import OutboxError
from agent.outbox_counts import COUNTERS, counts
from agent.outbox_file import make_private, refuse_foreign
from agent.outbox_transaction import Transaction

log = logging.getLogger(__name__)

Policy = Literal["drop-oldest", "reject-new"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    qos      INTEGER NOT NULL,
    retain   INTEGER NOT NULL,
    created  REAL    NOT NULL,
    size     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id       INTEGER PRIMARY KEY,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    created  REAL    NOT NULL,
    failed   REAL    NOT NULL,
    reason   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
DEAD_LETTER_KEEP = 1000
"""Dead letters kept for inspection; older ones are deleted."""


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


@dataclass(frozen=True)
class OutboxStats:
    length: int
    bytes: int
    oldest_age_s: float | None
    dropped_cap: int
    dropped_ttl: int
    rejected: int
    dead: int
    acked: int
    produced: int


class Outbox:
    """A bounded, ordered, crash-safe queue of MQTT messages in one SQLite file.

    ``max_bytes`` caps the payload bytes held; ``ttl_s`` drops rows older than that (0 = never).
    When a new row would break the cap, ``drop-oldest`` deletes the oldest rows to make room and
    ``reject-new`` refuses the new one; either way the loss is counted. The connection is used from
    one thread at a time (a lock guards it), so the pipeline and the MQTT forwarder may share it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        ttl_s: float = 7 * 24 * 3600.0,
        policy: Policy = "drop-oldest",
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.policy = policy
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(
                f"{self.path.parent}: cannot create the outbox folder ({exc.strerror or exc})"
            ) from exc
        refuse_foreign(self.path)  # before anything writes to it, its mode included
        make_private(self.path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            for name in COUNTERS:
                self._db.execute(
                    "INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)", (name,)
                )
            ok = self._db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox database ({exc})") from exc
        if ok != "ok":
            raise OutboxError(f"{self.path}: the outbox database is damaged ({ok})")
        self._bytes = self._sum_bytes()

    # -- writes ---------------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int, retain: bool, now: float) -> int | None:
        """Commit one message; return its row id, or None if ``reject-new`` refused it. A write
        that fails (a full disk) raises :class:`OutboxError` and changes nothing."""
        size = len(payload)
        with self._lock:
            with self._tx() as db:
                if size > self.max_bytes:
                    self._bump(db, "rejected")
                    return None
                freed = 0
                if self._bytes + size > self.max_bytes:
                    if self.policy == "reject-new":
                        self._bump(db, "rejected")
                        return None
                    freed = self._drop_oldest(db, self._bytes + size - self.max_bytes)
                cur = db.execute(
                    "INSERT INTO outbox(topic, payload, qos, retain, created, size) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (topic, payload, qos, int(retain), now, size),
                )
                row_id = int(cur.lastrowid or 0)
            self._bytes += size - freed  # (only once committed: Transaction)
            return row_id

    def ack(self, row_id: int) -> bool:
        """The broker has the message: forget it. False if it was already gone."""
        with self._lock:
            with self._tx(durable=False) as db:
                freed = self._delete(db, row_id)
            if freed is None:
                return False
            self._bytes -= freed
            return True

    def dead(self, row_id: int, reason: str, now: float) -> bool:
        """The broker refused the message for good: move it to the dead-letter table."""
        with self._lock:
            with self._tx() as db:
                row = db.execute(
                    "SELECT topic, payload, created FROM outbox WHERE id = ?", (row_id,)
                ).fetchone()
                if row is None:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO dead_letter"
                    "(id, topic, payload, created, failed, reason) VALUES (?, ?, ?, ?, ?, ?)",
                    (row_id, row[0], row[1], row[2], now, reason),
                )
                db.execute(
                    "DELETE FROM dead_letter WHERE id NOT IN "
                    "(SELECT id FROM dead_letter ORDER BY id DESC LIMIT ?)",
                    (DEAD_LETTER_KEEP,),
                )
                freed = self._delete(db, row_id) or 0
                self._bump(db, "dead")
            self._bytes -= freed
            return True

    def expire(self, now: float) -> int:
        """Drop rows older than the TTL; return how many."""
        if self.ttl_s <= 0:
            return 0
        with self._lock:
            with self._tx() as db:
                cutoff = now - self.ttl_s
                size = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE created < ?",
                    (cutoff,),
                ).fetchone()
                if not size[0]:
                    return 0
                db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
                self._bump(db, "dropped_ttl", int(size[0]))
            self._bytes -= int(size[1])
            return int(size[0])

    # -- reads ----------------------------------------------------------------------------------
    def take(self, limit: int, after_id: int = 0) -> list[Row]:
        """Up to ``limit`` rows with id > ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM outbox "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Row(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def stats(self, now: float) -> OutboxStats:
        with self._lock:
            c = counts(self._db)
            oldest = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()[0]
        return OutboxStats(
            length=c["length"],
            bytes=self._bytes,
            oldest_age_s=None if oldest is None else max(0.0, now - float(oldest)),
            dropped_cap=c["dropped_cap"],
            dropped_ttl=c["dropped_ttl"],
            rejected=c["rejected"],
            dead=c["dead"],
            acked=c["acked"],
            produced=c["produced"],
        )

    def dead_letters(self, limit: int = 100) -> list[tuple[int, str, str]]:
        """(id, topic, reason) of the newest dead letters."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, reason FROM dead_letter ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Close the file. The derived ``produced`` and ``acked`` are written into the counters
        table first (one commit per stop, not per message): earlier builds counted them there per
        message, and one run again on this file then goes on from today's figures."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                c = counts(self._db)
                with self._tx(durable=False):
                    self._db.executemany(
                        "INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)",
                        (("produced", c["produced"]), ("acked", c["acked"])),
                    )
            except (sqlite3.Error, OutboxError) as exc:  # a full disk: the rows are safe already
                log.warning("%s: could not record the counters at close (%s)", self.path, exc)
            finally:
                self._db.close()

    # -- internals ------------------------------------------------------------------------------
    def _tx(self, durable: bool = True) -> Transaction:
        """A write transaction; ``durable=False``: committed without an fsync (module doc)."""
        return Transaction(self._db, self.path, durable)

    def _sum_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0])

    def _bump(self, db: sqlite3.Connection, name: str, by: int = 1) -> None:
        db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    # The helpers below run inside a transaction and return the bytes they free; the caller
    # applies that to ``_bytes`` once the transaction has committed, so a failed one (a full
    # disk) leaves the count as it was, like the rows.
    def _delete(self, db: sqlite3.Connection, row_id: int) -> int | None:
        """Delete one row; the bytes it held, or None if it was already gone."""
        row = db.execute("SELECT size FROM outbox WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
        return int(row[0])

    def _drop_oldest(self, db: sqlite3.Connection, need: int) -> int:
        """Delete the oldest rows until ``need`` bytes are freed; the bytes freed."""
        freed = dropped = 0
        for row_id, size in db.execute("SELECT id, size FROM outbox ORDER BY id").fetchall():
            if freed >= need:
                break
            db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            freed += int(size)
            dropped += 1
        self._bump(db, "dropped_cap", dropped)
        return freed


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem holding ``path`` (for sizing the cap)."""
    st = os.statvfs(Path(path).parent if not Path(path).is_dir() else path)
    return st.f_bavail * st.f_frsize
