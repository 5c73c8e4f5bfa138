"""The outbox's file before SQLite opens it: refuse what is not an outbox (another application's
database, any other file) without changing it, and keep the file private to its user."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from agent.errors import OutboxError
from agent.regular_file import NotRegular, open_regular_fd

TABLES = {
    "outbox": ("id", "topic", "payload", "qos", "retain", "created", "size"),
    "dead_letter": ("id", "topic", "payload", "created", "failed", "reason"),
    "counters": ("name", "value"),
}
"""The columns of each table of the outbox's schema (:data:`agent.outbox._SCHEMA`): what tells
an outbox from another database."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEFT_AS_IS = "it was left as it is: set outbox.path to the agent's outbox or a new file"


def refuse_foreign(path: Path) -> None:
    """An :class:`OutboxError` if a file at ``path`` is not an outbox (another application's
    database, a text file), raised before the agent writes anything to it: no table, no WAL
    switch, no ``-wal``/``-shm`` file, no mode change. Accepted: no file, an empty one, and an
    outbox of any build (all of :data:`TABLES` or part of them, as a start stopped between two
    ``CREATE TABLE`` leaves it; SQLite's own tables aside, nothing else)."""
    try:
        fd, st = _open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # a new outbox
    try:
        head = os.read(fd, len(_SQLITE_MAGIC)) if st.st_size else b""
    finally:
        os.close(fd)
    if not st.st_size:
        return  # an empty file: SQLite makes it a new database
    if head != _SQLITE_MAGIC:
        raise OutboxError(f"{path}: is not an outbox database (not a SQLite file); {_LEFT_AS_IS}")
    problem = _not_an_outbox(path)
    if problem:
        raise OutboxError(
            f"{path}: is a SQLite database of another application ({problem}); {_LEFT_AS_IS}"
        )


def _not_an_outbox(path: Path) -> str:
    """What in the SQLite database at ``path`` is not an outbox's ("" if nothing), read without
    writing: ``immutable=1`` takes no lock and makes no ``-wal``/``-shm`` file (a ``mode=ro``
    connection to a WAL database makes both, and leaves them). It ignores a ``-wal`` file's
    content, though, so where a non-empty one exists (a writer is running, or was killed) the
    file is read as any reader does, with the ``-wal``/``-shm`` files that are there already."""
    try:
        in_wal = path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        in_wal = False
    # as_uri escapes '#', '?' and '%', which would otherwise cut the path short
    uri = path.resolve().as_uri() + ("?mode=ro" if in_wal else "?immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
        try:
            objects = [
                (str(kind), str(name))
                for kind, name in db.execute("SELECT type, name FROM sqlite_master ORDER BY name")
                if not str(name).startswith("sqlite_")  # SQLite's own (sqlite_sequence, ...)
            ]
            columns = {name: _columns(db, name) for kind, name in objects if kind == "table"}
            marks = [
                db.execute(f"PRAGMA {k}").fetchone()[0] for k in ("application_id", "user_version")
            ]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OutboxError(
            f"{path}: cannot read the outbox database ({exc}); {_LEFT_AS_IS}"
        ) from exc
    if not objects:  # an empty database: a new outbox, unless another application marked it
        return (
            f"no tables; application_id {marks[0]}, user_version {marks[1]}" if any(marks) else ""
        )
    if all(kind == "table" and columns[name] == TABLES.get(name) for kind, name in objects):
        return ""
    said = [f"tables: {', '.join(columns)}" if columns else "no tables"]
    said += [f"{kind} {name}" for kind, name in objects if kind != "table"]
    said += [
        f"{n} has other columns than the agent's"
        for n in columns
        if n in TABLES and columns[n] != TABLES[n]
    ]
    return "; ".join(said)


def _open_regular(path: Path, flags: int) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file at ``path`` (:func:`open_regular_fd`: a FIFO does not
    hang the start) and its status; :class:`OutboxError` for anything else, or an open that
    fails other than by a missing file (``FileNotFoundError``, which the caller decides on)."""
    try:
        return open_regular_fd(path, flags, 0o600)
    except NotRegular as exc:
        raise OutboxError(f"{path}: the outbox is not a regular file ({exc.kind})") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OutboxError(f"{path}: cannot open the outbox ({exc.strerror or exc})") from exc


def _columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    rows = db.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
    return tuple(str(r[0]) for r in rows)


def make_private(path: Path) -> None:
    """Predictions are personal data: the database (created here if new) and its ``-wal`` and
    ``-shm`` files are made 0600 when they belong to this user, whatever the umask or an older
    build left (SQLite gives new ``-wal``/``-shm`` files the database's mode). Anything but a
    regular file at the path (a folder, a FIFO, a device) is an :class:`OutboxError`."""
    fd, st = _open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm"):
        other = path.with_name(path.name + side)
        try:
            st = other.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                other.chmod(0o600)
        except OSError:
            pass  # absent (SQLite makes it, with the database's mode)
