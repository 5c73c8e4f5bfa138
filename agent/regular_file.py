"""Regular files only, where the agent reads a file whole or replaces one: a FIFO would block the
read (or the open) forever, /dev/zero never ends, and a folder or a device is never what a
profile, a model, the outbox, the credentials or a recording meant.

One rule for every caller, in two forms:

- :func:`open_regular_fd` opens the path and checks the type on the open descriptor, so nothing
  can be swapped in between the check and the read (a FIFO put there after a ``stat`` would
  block the read that follows it). The open does not block (``O_NONBLOCK``: opening a FIFO for
  reading waits for a writer otherwise); the flag is cleared once the file is known to be
  regular. A special file already there is refused without being opened at all (opening some
  devices acts on them: a tape rewinds, a terminal can become the controlling one).
- :func:`stat_regular` for a name that is replaced and never read (a recording's destination,
  renamed over at the end): nothing is opened.

Both raise :class:`NotRegular`, which names the path and what it is; each caller turns it into
its own error and words (``OutboxError``, ``ConfigError``, ``RecordingError``;
:func:`open_regular` into :class:`NotARegularFile` for models and the manifest).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from agent.errors import AgentError, ModelError


class NotRegular(AgentError):
    """``path`` names a folder, a FIFO, a device or a socket (or a link to one) where a regular
    file is needed. Neutral: callers map it to their own error (:attr:`kind` for the words)."""

    def __init__(self, path: str | Path, mode: int) -> None:
        self.path = path
        self.mode = mode
        self.kind = file_kind(mode)
        super().__init__(f"{path}: not a regular file ({self.kind})")


class NotARegularFile(ModelError):
    """A model path that names a FIFO, a device, a folder or a socket (or a link to one)."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind})")
        self.kind = kind


def stat_regular(path: str | Path) -> os.stat_result | None:
    """The status of the regular file (or link to one) at ``path``; None when nothing can be
    seen there (absent, or out of reach: an open or a write that follows says why);
    :class:`NotRegular` for anything else. Opens nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(path, st.st_mode)
    return st


def open_regular_fd(
    path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o666
) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file (or link to one) at ``path``, opened with ``flags``
    (``mode`` for a file ``O_CREAT`` makes), and its status, read from the descriptor.
    :class:`NotRegular` for anything else; an ``OSError`` of the open (a missing file, a
    permission) as it is. The caller closes the descriptor."""
    stat_regular(path)  # a special file already there: refused before it is opened
    extra = os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | extra, mode)
    try:
        st = os.fstat(fd)  # what was opened, whatever the name points to now
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, st.st_mode)
        os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def open_regular(path: str | Path) -> BinaryIO:
    """``open(path, "rb")`` for a regular file (or a link to one) only (a model, the
    manifest): anything else is :class:`NotARegularFile`."""
    try:
        fd, _ = open_regular_fd(path)
    except NotRegular as exc:
        raise NotARegularFile(path, exc.kind) from None
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages (``a FIFO``)."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"
