"""``outbox.path`` naming a file that is not an outbox (another application's SQLite database, a
text file): refused in one line before anything about the file changes (mode, content, journal
mode, ``-wal``/``-shm`` files). No file, an empty one and the agent's own outbox still open."""

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import OutboxError
from agent.outbox import Outbox
from agent.outbox_counts import read_counts
from tests.agent.helpers import DEFAULT_PROFILE, ROOT

LEFT = "it was left as it is: set outbox.path to the agent's outbox or a new file"


def _state(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file of ``folder``: its mode and sha256 (a -wal or -shm file made shows too)."""
    return {
        f.name: (stat.S_IMODE(f.stat().st_mode), hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sorted(folder.iterdir())
    }


def _app_db(path: Path, *schema: str, wal: bool = False) -> None:
    """Another application's database, left as that application closes it, mode 0644."""
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    for statement in schema:
        db.execute(statement)
    db.commit()
    db.close()
    path.chmod(0o644)


def _refused(path: Path) -> str:
    before = _state(path.parent)
    with pytest.raises(OutboxError) as exc:
        Outbox(path)
    assert _state(path.parent) == before  # same mode and bytes, no -wal/-shm left behind
    assert "\n" not in str(exc.value)
    return str(exc.value)


@pytest.mark.parametrize("wal", [False, True])
def test_another_applications_database_is_refused_and_left_as_it_is(
    tmp_path: Path, wal: bool
) -> None:
    """It used to get the outbox's tables, WAL and mode 0600, with no error."""
    path = tmp_path / "notes.db"
    _app_db(
        path,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO notes (body) VALUES ('keep me')",
        wal=wal,
    )
    message = _refused(path)
    assert message == (
        f"{path}: is a SQLite database of another application (tables: notes); {LEFT}"
    )
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
    assert names == ["notes"]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == ("wal" if wal else "delete")
    db.close()


def test_a_running_applications_database_with_its_tables_in_the_wal_is_refused(
    tmp_path: Path,
) -> None:
    """The application still has it open: its tables are in the -wal file, not yet in the main
    file (which alone looks like an empty database, a new outbox)."""
    path = tmp_path / "notes.db"
    app = sqlite3.connect(path, isolation_level=None)
    try:
        app.execute("PRAGMA journal_mode=WAL")
        app.execute("PRAGMA wal_autocheckpoint=0")
        app.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        before = {k: v for k, v in _state(tmp_path).items() if not k.endswith("-shm")}
        with pytest.raises(OutboxError) as exc:
            Outbox(path)
        after = {k: v for k, v in _state(tmp_path).items() if not k.endswith("-shm")}
        assert [r[0] for r in app.execute("SELECT name FROM sqlite_master")] == ["notes"]
    finally:
        app.close()
    assert str(exc.value) == (
        f"{path}: is a SQLite database of another application (tables: notes); {LEFT}"
    )
    assert after == before  # (the -shm is the readers' shared index: any reader writes it)


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        # another application's own 'outbox' table (the transactional-outbox pattern)
        (
            ["CREATE TABLE outbox (id INTEGER PRIMARY KEY, event TEXT)"],
            "tables: outbox; outbox has other columns than the agent's",
        ),
        # the agent's tables and one more
        (
            [
                "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
                "CREATE TABLE users (id INTEGER)",
            ],
            "tables: counters, users",
        ),
        # the agent's tables and a view of another application's
        (
            [
                "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
                "CREATE VIEW totals AS SELECT SUM(value) FROM counters",
            ],
            "tables: counters; view totals",
        ),
        # no tables, but marked by an application
        (["PRAGMA user_version = 7"], "no tables; application_id 0, user_version 7"),
    ],
)
def test_a_database_that_only_looks_like_an_outbox_is_refused(
    tmp_path: Path, schema: list[str], said: str
) -> None:
    path = tmp_path / "app.db"
    _app_db(path, *schema)
    assert _refused(path) == f"{path}: is a SQLite database of another application ({said}); {LEFT}"


def test_a_text_file_is_refused_and_keeps_its_mode(tmp_path: Path) -> None:
    """Its mode went from 0644 to 0600 before SQLite's 'file is not a database'."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping: milk, bread\n" * 20)
    path.chmod(0o644)
    assert _refused(path) == f"{path}: is not an outbox database (not a SQLite file); {LEFT}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_damaged_sqlite_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    _app_db(path, "CREATE TABLE notes (a)")
    path.write_bytes(path.read_bytes()[:100] + b"\xff" * 4000)  # header kept, pages gone
    assert _refused(path).startswith(f"{path}: cannot read the outbox database (")


@pytest.mark.parametrize("kind", ["missing", "empty file", "empty database"])
def test_no_file_an_empty_one_or_an_empty_database_becomes_the_outbox(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "o.db"
    if kind == "empty file":
        path.touch(mode=0o644)
    elif kind == "empty database":
        _app_db(path)  # SQLite writes a header only once something is stored: force one
        db = sqlite3.connect(path)
        db.execute("VACUUM")
        db.close()
    box = Outbox(path)
    box.put("t", b"x", 1, False, 0.0)
    box.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_counts(path)["length"] == 1


def test_the_agents_own_outbox_opens_again(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    first = Outbox(path)
    first.put("t", b"a", 1, False, 0.0)
    first.close()
    again = Outbox(path)
    assert [r.payload for r in again.take(10)] == [b"a"]
    again.close()


def test_an_outbox_a_killed_start_left_half_made_opens(tmp_path: Path) -> None:
    """A start stopped between two CREATE TABLE (each is its own commit): part of the schema."""
    path = tmp_path / "o.db"
    _app_db(
        path,
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, "
        "created REAL NOT NULL, size INTEGER NOT NULL)",
        wal=True,
    )
    box = Outbox(path)
    assert box.put("t", b"x", 1, False, 0.0) is not None
    assert box.dead_letters() == []
    box.close()


def test_an_outbox_whose_rows_are_still_in_its_wal_opens_with_them(tmp_path: Path) -> None:
    """A killed agent's outbox: the tables and rows may be in the -wal file only (what the
    read-only check must see, or the main file looks empty or half made)."""
    live = tmp_path / "live"
    box = Outbox(live / "o.db")
    for i in range(3):
        box.put("t", f"m{i}".encode(), 1, False, float(i))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("o.db", "o.db-wal"):  # what a SIGKILL leaves (the -shm is rebuilt)
        shutil.copy2(live / name, crashed / name)
    box.close()
    assert (crashed / "o.db-wal").stat().st_size > 0
    again = Outbox(crashed / "o.db")
    assert [r.payload for r in again.take(10)] == [b"m0", b"m1", b"m2"]
    again.close()


def test_run_with_another_applications_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """What the daemon's start prints: one ``har-agent: error:`` line, status 1; the file as it
    was."""
    path = tmp_path / "app" / "notes.db"
    path.parent.mkdir()
    _app_db(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "outbox-foreign-{os.getpid()}"')
    prof.write_text(f'{text}\n[outbox]\npath = "{path}"\n')
    before = _state(path.parent)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", "-p", str(prof)],
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"har-agent: error: {path}: is a SQLite database of another application "
        f"(tables: notes); {LEFT}"
    ], proc.stderr
    assert _state(path.parent) == before


def test_the_guard_knows_the_tables_an_outbox_has(tmp_path: Path) -> None:
    """The columns the guard accepts are those a new outbox creates: a schema change that
    forgot :data:`agent.outbox_file.TABLES` would refuse every existing outbox."""
    from agent.outbox_file import TABLES

    path = tmp_path / "o.db"
    Outbox(path).close()
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        made = {
            n: tuple(r[1] for r in db.execute(f"PRAGMA table_info({n})"))
            for n in names
            if not n.startswith("sqlite_")
        }
    finally:
        db.close()
    assert made == TABLES
