"""Regular files only (agent/regular_file.py): one descriptor-based rule that the models, the
manifest, the outbox, the credentials and the recordings all use, each in its own words."""

import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.credentials import load_credentials
from agent.errors import ConfigError, ModelError, OutboxError, RecordingError
from agent.outbox_file import make_private, refuse_foreign
from agent.recording import RecordingReader
from agent.recording_recover import salvage
from agent.regular_file import NotARegularFile, NotRegular, open_regular, open_regular_fd

CREDENTIALS = 'username = "har"\npassword = "p"\n'


def _special(tmp_path: Path, kind: str) -> Path:
    """A folder, a FIFO, a character device (a link to /dev/null: making a node needs root) or
    a UNIX socket at ``tmp_path / "x"``."""
    path = tmp_path / "x"
    if kind == "a folder":
        path.mkdir()
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a character device":
        path.symlink_to("/dev/null")
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    return path


KINDS = ["a folder", "a FIFO", "a character device", "a socket"]


@pytest.mark.parametrize("kind", KINDS)
def test_anything_but_a_regular_file_is_refused_without_being_opened(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _special(tmp_path, kind)
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    with pytest.raises(NotRegular) as refused:
        open_regular_fd(path)
    assert (refused.value.kind, str(refused.value)) == (
        kind,
        f"{path}: not a regular file ({kind})",
    )
    assert opened == []  # opening a device can act on it (a tape rewinds)


def test_a_regular_file_and_a_link_to_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    for path in (tmp_path / "f", tmp_path / "link"):
        fd, st = open_regular_fd(path)
        try:
            assert stat.S_ISREG(st.st_mode) and st.st_size == 4
            assert os.get_blocking(fd)  # O_NONBLOCK only for the open
            assert os.read(fd, 10) == b"data"
        finally:
            os.close(fd)
    with open_regular(tmp_path / "link") as fh:
        assert fh.read() == b"data"


def test_a_missing_file_is_the_open_s_error_and_o_creat_makes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_regular_fd(tmp_path / "none")
    old = os.umask(0)
    try:
        fd, st = open_regular_fd(tmp_path / "new", os.O_RDWR | os.O_CREAT, 0o600)
    finally:
        os.umask(old)
    os.close(fd)
    assert stat.S_IMODE(st.st_mode) == 0o600 and (tmp_path / "new").is_file()


@pytest.fixture
def swap_after_stat(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``arm(path)``: the regular file at ``path`` is replaced by a FIFO after the first
    ``os.stat`` of it has seen the file (or, if ``os.open`` comes first, just before it): the
    race that a check by name before the open loses (the read of the FIFO then blocks for
    ever). Any reader left blocked is released at the end."""
    armed: list[Path] = []
    real_stat, real_open = os.stat, os.open

    def swap(p: Any) -> None:
        if armed and os.fspath(p) == str(armed[0]):
            target = armed.pop()
            target.unlink()
            os.mkfifo(target)

    def stat_then_swap(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real_stat(p, *args, **kwargs)
        swap(p)
        return st

    def swap_then_open(p: Any, *args: Any, **kwargs: Any) -> int:
        swap(p)
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_then_swap)
    monkeypatch.setattr(os, "open", swap_then_open)
    fifos: list[Path] = []
    yield lambda path: (armed.append(path), fifos.append(path))  # type: ignore[func-returns-value]
    for fifo in fifos:  # a reader stuck in open() or read() of the FIFO: give it an end
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass


def _within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None: nothing), failing the test if it has not returned within
    ``seconds`` (it blocks on a FIFO)."""
    got: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            got.append(None)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            got.append(exc)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "blocked on a FIFO swapped in after the check"
    return got[0]


@pytest.mark.parametrize(
    ("caller", "content", "error", "message"),
    [
        (load_credentials, CREDENTIALS, ConfigError, "the credentials file is not a regular file"),
        (
            RecordingReader,
            "#har-recording/1 {}\n",
            RecordingError,
            "is not a regular file (a FIFO)",
        ),
        (open_regular, "{}", NotARegularFile, "not a regular file (a FIFO)"),
        (refuse_foreign, "", OutboxError, "the outbox is not a regular file (a FIFO)"),
        (
            lambda part: salvage(part, part.parent / "out.har.csv"),
            "#har-recording/1 {}\n",
            RecordingError,
            "is not a regular file",
        ),
    ],
)
def test_a_fifo_swapped_in_after_the_check_is_refused_not_read(
    tmp_path: Path,
    swap_after_stat: Callable[[Path], None],
    caller: Callable[[Path], object],
    content: str,
    error: type[Exception],
    message: str,
) -> None:
    """load_credentials and the recording reader checked the name (stat), then read it: a FIFO
    put there in between blocked them for ever (the models and the outbox checked the open
    descriptor already). The type is now read from the open descriptor by all four."""
    path = tmp_path / "file"
    path.write_text(content)
    path.chmod(0o600)
    swap_after_stat(path)
    got = _within(10, lambda: caller(path))
    assert isinstance(got, error) and f"{path}: {message}" in str(got), repr(got)
    assert stat.S_ISFIFO(path.lstat().st_mode)  # the swap happened; nothing replaced it


def _message(call: Callable[[], object], error: type[Exception]) -> str:
    with pytest.raises(error) as refused:
        call()
    return str(refused.value)


@pytest.mark.parametrize("kind", KINDS)
def test_each_caller_keeps_its_words(tmp_path: Path, kind: str) -> None:
    path = _special(tmp_path, kind)
    said = {
        "credentials": _message(lambda: load_credentials(path), ConfigError),
        "recording": _message(lambda: RecordingReader(path), RecordingError),
        "model": _message(lambda: open_regular(path), ModelError),
        "outbox": _message(lambda: refuse_foreign(path), OutboxError),
        "new outbox": _message(lambda: make_private(path), OutboxError),
    }
    what = "is a folder," if kind == "a folder" else f"is not a regular file ({kind}),"
    assert said == {
        "credentials": f"{path}: the credentials file is not a regular file",
        "recording": f"{path}: {what} not a recording",
        "model": f"{path}: not a regular file ({kind})",
        "outbox": f"{path}: the outbox is not a regular file ({kind})",
        "new outbox": f"{path}: the outbox is not a regular file ({kind})",
    }


@pytest.mark.parametrize("kind", ["a FIFO", "a folder"])
def test_the_writer_never_writes_into_a_part_file_that_is_not_a_file(
    tmp_path: Path, kind: str
) -> None:
    """``OUT.part`` a FIFO: opening it to write waited for a reader, for ever."""
    from agent.recording_header import Channel, RecordingHeader
    from agent.recording_writer import RecordingWriter

    part = _special(tmp_path, kind).rename(tmp_path / "s.har.csv.part")
    header = RecordingHeader(50.0, (Channel("a", "g"),), "2012-01-01T00:00:00Z")
    got = _within(10, lambda: RecordingWriter(tmp_path / "s.har.csv", header))
    assert isinstance(got, RecordingError), repr(got)
    assert str(got) == (
        f"{part}: exists and is not a regular file ({kind}); refusing to write the recording there"
    )
    assert sorted(tmp_path.iterdir()) == [part]
