"""Opening a file the agent reads whole (a model, the manifest) only when it is a regular file:
a FIFO would block the read forever and /dev/zero never ends."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from agent.errors import ModelError


class NotARegularFile(ModelError):
    """A model path that names a FIFO, a device, a folder or a socket (or a link to one)."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind})")
        self.kind = kind


def open_regular(path: str | Path) -> BinaryIO:
    """``open(path, "rb")`` for a regular file (or a link to one) only: a FIFO would block the
    read forever and /dev/zero never ends, so anything else is :class:`NotARegularFile`."""
    # O_NONBLOCK: opening a FIFO for reading does not wait for a writer; the type is checked on
    # the open descriptor (no window between a stat and the open for the path to change)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, file_kind(mode))
        os.set_blocking(fd, True)
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
