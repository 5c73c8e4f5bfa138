"""Salvage a recording that was cut off while being written (``har-agent recording recover``).

``har-agent record`` writes ``<name>.part`` and renames it when the session ends; a power cut or
SIGKILL leaves the ``.part`` behind. Its rows are flushed every few hundred samples, but the
file ends mid-row, and a gzipped one ends mid-stream (no end-of-stream marker), which the reader
refuses. :func:`salvage` keeps what was written completely: the gzip stream decompressed as far
as it goes, cut after the last whole CSV line or binary record. The result is an ordinary
recording, checked row by row by the normal reader.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from agent.errors import RecordingError
from agent.recording import BINARY_VERSION, MAGIC, RecordingReader
from agent.recording_bin import ENCODING as BINARY
from agent.recording_bin import record_dtype
from agent.recording_header import RecordingHeader
from agent.recording_writer import RecordingWriter
from agent.regular_file import NotRegular, open_regular_fd

READ_BLOCK = 1 << 16


@dataclass(frozen=True)
class Salvage:
    rows: int
    """Samples kept."""
    dropped_bytes: int
    """Decoded bytes after the last whole row or record (a partial one), dropped."""
    gzip_complete: bool
    """Whether the gzip stream was whole (False: it was cut off)."""


def _decoded(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped as far as the stream goes; whether the stream was whole."""
    try:
        fd, _ = open_regular_fd(path)  # the file checked is the file read (a FIFO never blocks)
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except NotRegular:
        raise RecordingError(f"{path}: is not a regular file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw, True
    d = zlib.decompressobj(wbits=31)
    out = bytearray()
    for i in range(0, len(raw), READ_BLOCK):
        try:
            out += d.decompress(raw[i : i + READ_BLOCK])
        except zlib.error:  # damaged past the cut: keep what came before
            return bytes(out), False
        if d.eof:
            return bytes(out), True
    return bytes(out), False


def _whole_rows(data: bytes, where: Path) -> tuple[bytes, int]:
    """``data`` cut after its last whole row; the bytes dropped."""
    end = data.find(b"\n")
    if end < 0 or not data.startswith(MAGIC.encode()):
        raise RecordingError(f"{where}: not a har-agent recording, or cut off inside its header")
    head = end + 1
    try:
        version, _, text = data[len(MAGIC) : end].decode("utf-8").partition(" ")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{where}: unreadable header ({exc})") from None
    # the header checked as the reader checks it: the body's layout depends on its fields
    header = RecordingHeader.from_json(text, str(where))
    if version == str(BINARY_VERSION) and json.loads(text).get("encoding") == BINARY:
        size = record_dtype(len(header.channels), header.labelled).itemsize
        keep = head + (len(data) - head) // size * size
    else:
        keep = data.rfind(b"\n") + 1
    return data[:keep], len(data) - keep


def salvage(part: Path, out: Path) -> Salvage:
    """Write the whole rows of ``part`` to ``out`` (its name picks the encoding, as for
    ``convert``). RecordingError if nothing readable is left or a kept row is bad. ``part`` is
    never written to: everything goes through a temporary folder beside ``out``, and ``out``
    appears, complete, only at the end."""
    data, whole = _decoded(part)
    kept, dropped = _whole_rows(data, part)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".recover-") as tmp:
        plain = Path(tmp) / "salvaged"
        plain.write_bytes(kept)
        staged = Path(tmp) / out.name  # same suffixes: the same encoding as ``out``
        try:
            with RecordingReader(plain) as reader:
                with RecordingWriter(staged, reader.header) as writer:
                    for chunk in reader.chunks(4096):
                        writer.write(chunk.t, chunk.values, chunk.labels)
        except RecordingError as exc:  # name the file the user gave, not the temporary one
            raise RecordingError(str(exc).replace(str(plain), str(part))) from None
        if writer.rows == 0:
            raise RecordingError(f"{part}: no whole sample to recover")
        os.replace(staged, out)
        return Salvage(writer.rows, dropped, whole)
