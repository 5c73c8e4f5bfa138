"""The outbox's counters: the rare losses counted as they happen (cap, TTL, rejected, dead) and
the two figures derived rather than counted per message, ``produced`` (the id sequence: every row
ever inserted) and ``acked`` (what is neither queued, dropped nor dead); read on the agent's own
connection (:class:`agent.outbox.Outbox`) or, read-only, from another process that watches a
running agent (:func:`read_counts`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

COUNTERS = ("dropped_cap", "dropped_ttl", "rejected", "dead")
"""Counted as they happen (rare events). ``produced`` and ``acked`` are derived (module doc)."""


def counts(db: sqlite3.Connection) -> dict[str, int]:
    """The counters, with ``produced`` (the id sequence: every row ever inserted) and ``acked``
    (what is neither queued, dropped nor dead) derived rather than counted per message."""
    c = {name: 0 for name in COUNTERS}
    c.update({str(k): int(v) for k, v in db.execute("SELECT name, value FROM counters")})
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    length = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    produced = int(seq[0]) if seq else 0
    gone = c["dropped_cap"] + c["dropped_ttl"] + c["dead"]
    return {**c, "length": length, "produced": produced, "acked": produced - length - gone}


def read_counts(path: str | Path) -> dict[str, int]:
    """:func:`counts` of an outbox file, opened read-only (another process may be writing it);
    all zeros when it does not exist yet. For tests and tools that watch a running agent."""
    zeros = {name: 0 for name in (*COUNTERS, "length", "produced", "acked")}
    if not Path(path).exists():
        return zeros
    # as_uri escapes '#', '?' and '%', which would otherwise cut the path short
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    try:
        db.execute("BEGIN")  # one snapshot for all the reads, while the agent writes
        try:
            return counts(db)
        finally:
            db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the agent has not created the schema yet
            return zeros
        raise
    finally:
        db.close()
