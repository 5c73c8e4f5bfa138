"""One write transaction on the outbox's SQLite connection: ``BEGIN IMMEDIATE`` ... ``COMMIT``,
rolled back on error, SQLite's errors turned into one :class:`OutboxError` naming the file, and the
commit without an fsync that an ack takes (:mod:`agent.outbox`)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from agent.errors import OutboxError

log = logging.getLogger("agent.outbox")


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; sqlite errors become OutboxError. A
    transaction that is not ``durable`` commits with ``synchronous=NORMAL`` (no fsync); the
    connection is back at ``FULL`` afterwards, whatever happened.

    After some errors (SQLITE_FULL: a full disk, SQLITE_IOERR, ...) SQLite has rolled the
    transaction back by itself: an explicit ROLLBACK then fails ("no transaction is active") and
    would hide the real problem, so it is issued only while a transaction is still open, and a
    failing one never replaces the error that is being raised."""

    def __init__(self, db: sqlite3.Connection, path: Path, durable: bool = True) -> None:
        self._db = db
        self._path = path
        self._durable = durable

    def __enter__(self) -> sqlite3.Connection:
        try:
            if not self._durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._restore()
            raise self._error(exc) from exc
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                try:
                    self._db.execute("COMMIT")
                    return
                except sqlite3.Error as err:
                    self._rollback()
                    raise self._error(err) from err
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
        finally:
            self._restore()

    def _error(self, exc: sqlite3.Error) -> OutboxError:
        return OutboxError(f"{self._path}: cannot write the outbox ({exc})")

    def _rollback(self) -> None:
        if not self._db.in_transaction:  # SQLite has rolled it back already
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the error being raised says what went wrong
            log.debug("%s: rollback failed (%s)", self._path, exc)

    def _restore(self) -> None:
        if not self._durable:
            try:
                self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:  # the connection is unusable; the next write says so
                pass
