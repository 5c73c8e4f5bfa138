"""Salvage a recording that was cut off while being written (``har-agent recording recover``).

``har-agent record`` writes ``<name>.part`` and renames it when the session ends; a power cut or
SIGKILL leaves the ``.part`` behind. Its rows are flushed every few hundred samples, but the
file ends mid-row, and a gzipped one ends mid-stream (no end-of-stream marker), which the reader
refuses. :func:`salvage` keeps what was written completely: the gzip stream decompressed as far
as it goes, cut after the last whole CSV line or binary record. The result is an ordinary
recording, checked row by row by the normal reader.

A gzip stream that is damaged (a bad block, a checksum that does not match) is decoded as far as
zlib goes too; the rows before the first one the reader refuses are kept, that one and the rest
dropped, and the result says where the damage showed (as the reader's message does).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import RecordingError
from agent.recording import BINARY_VERSION, MAGIC, RecordingReader
from agent.recording_bin import ENCODING as BINARY
from agent.recording_bin import record_dtype
from agent.recording_csv import RowError, damage
from agent.recording_gzip import GzipReader, is_damage
from agent.recording_header import RecordingHeader
from agent.recording_writer import RecordingWriter
from agent.regular_file import NotRegular, open_regular_fd


@dataclass(frozen=True)
class Salvage:
    rows: int
    """Samples kept."""
    dropped_bytes: int
    """Decoded bytes after the last sample kept: a partial row or record, or, when the gzip
    stream is damaged, the first bad row and everything after it."""
    gzip_complete: bool
    """Whether the gzip stream was whole (False: it was cut off, or is damaged)."""
    damage: str | None = None
    """When the gzip stream is damaged, where, as the reader says it
    (:func:`~agent.recording_csv.damage`); the samples before it were kept."""
    first_bad: int | None = None
    """The line (CSV) or record (binary) of the first bad row of a damaged stream, when one
    was decoded: it and everything after it were dropped."""


def _decoded(path: Path) -> tuple[bytes, BaseException | None]:
    """The file's bytes, gunzipped as far as the stream goes; why it ended early (None: it did
    not; see :attr:`~agent.recording_gzip.GzipReader.error`)."""
    try:
        fd, _ = open_regular_fd(path)  # the file checked is the file read (a FIFO never blocks)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            if os.pread(fd, 2, 0) != b"\x1f\x8b":
                return fh.readall(), None
            gz = GzipReader(fh)
            return gz.readall(), gz.error
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except NotRegular:
        raise RecordingError(f"{path}: is not a regular file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class _Layout:
    """Where the rows of a decoded recording start, and how long a record is (binary)."""

    head: int
    """The offset of the first byte after the header line."""
    record: int | None
    """The size of a binary record; None: CSV rows, one a line."""

    @property
    def unit(self) -> str:
        return "line" if self.record is None else "record"

    def whole(self, data: bytes) -> bytes:
        """``data`` cut after its last whole row or record."""
        if self.record is None:
            return data[: data.rfind(b"\n") + 1]
        return data[: self.head + (len(data) - self.head) // self.record * self.record]

    def before(self, data: bytes, number: int) -> bytes:
        """``data`` cut before its line or record ``number`` (the header is line 1)."""
        if self.record is not None:
            return data[: self.head + (number - 1) * self.record]
        end = 0
        for _ in range(number - 1):
            end = data.index(b"\n", end) + 1
        return data[:end]

    def last(self, data: bytes) -> int:
        """The number of the last line or record ``data`` holds, whole or not."""
        if self.record is None:
            return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return -(-(len(data) - self.head) // self.record)


def _layout(data: bytes, where: Path, error: BaseException | None) -> _Layout:
    """How the rows of ``data`` are laid out, from its header (checked as the reader checks it:
    the body's layout depends on its fields)."""
    end = data.find(b"\n")
    if end < 0 or not data.startswith(MAGIC.encode()):
        if is_damage(error):
            assert error is not None
            raise RecordingError(f"{where}: {damage(error, 'line', None, 1)}: nothing to recover")
        raise RecordingError(f"{where}: not a har-agent recording, or cut off inside its header")
    try:
        version, _, text = data[len(MAGIC) : end].decode("utf-8").partition(" ")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{where}: unreadable header ({exc})") from None
    header = RecordingHeader.from_json(text, str(where))
    if version == str(BINARY_VERSION) and json.loads(text).get("encoding") == BINARY:
        return _Layout(end + 1, record_dtype(len(header.channels), header.labelled).itemsize)
    return _Layout(end + 1, None)


def salvage(part: Path, out: Path) -> Salvage:
    """Write the whole rows of ``part`` to ``out`` (its name picks the encoding, as for
    ``convert``). RecordingError if nothing readable is left or a kept row is bad; but when the
    gzip stream is damaged, the rows before the first bad one are kept (the damage explains the
    bad row). ``part`` is never written to: everything goes through a temporary folder beside
    ``out``, and ``out`` appears, complete, only at the end."""
    data, error = _decoded(part)
    layout = _layout(data, part, error)
    damaged = is_damage(error)
    kept = layout.whole(data)
    first_bad: tuple[int, str] | None = None
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".recover-") as tmp:
        plain = Path(tmp) / "salvaged"
        staged = Path(tmp) / out.name  # same suffixes: the same encoding as ``out``

        def told(exc: RecordingError, after: str = "") -> RecordingError:
            # name the file the user gave, not the temporary one
            return RecordingError(str(exc).replace(str(plain), str(part)) + after)

        while True:
            plain.write_bytes(kept)
            try:
                rows = _rewrite(plain, staged)
                break
            except RowError as exc:
                if not damaged:
                    raise told(exc) from None
                # a bad row in a damaged stream: keep the rows before it (each bad row found
                # is earlier than the one before: the rows up to it are checked again)
                first_bad = (exc.number, exc.reason)
                kept = layout.before(kept, exc.number)
            except RecordingError as exc:
                raise told(exc, _also(error, layout, first_bad, data)) from None
        said = _also(error, layout, first_bad, data)
        if rows == 0:
            raise RecordingError(f"{part}: no whole sample to recover{said}")
        os.replace(staged, out)
    text = None
    if damaged:
        assert error is not None
        text = damage(error, layout.unit, first_bad, layout.last(data))
    return Salvage(
        rows,
        len(data) - len(kept),
        error is None,
        text,
        first_bad[0] if first_bad is not None else None,
    )


def _also(
    error: BaseException | None, layout: _Layout, bad: tuple[int, str] | None, data: bytes
) -> str:
    """What an error message adds when the gzip stream is damaged."""
    if not is_damage(error):
        return ""
    assert error is not None
    return f"; {damage(error, layout.unit, bad, layout.last(data))}"


def _rewrite(plain: Path, staged: Path) -> int:
    """Read ``plain``, checking every row, and write it to ``staged``; the rows written."""
    with RecordingReader(plain) as reader:
        with RecordingWriter(staged, reader.header) as writer:
            for chunk in reader.chunks(4096):
                writer.write(chunk.t, chunk.values, chunk.labels)
    return writer.rows
