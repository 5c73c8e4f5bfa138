"""The har-agent recording format (version 1): read and write IMU sessions as a stream.

A recording is a UTF-8 CSV file, optionally gzip-compressed (name ends in ``.gz``)::

    #har-recording/1 {"sample_rate_hz": 50.0, "channels": [...], "source": {...}, ...}
    t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label
    0.000000,1.0206,-0.1257,0.1003,0.0342,-0.0031,0.0011,STANDING
    ...

Line 1 is a magic word with the format version and a JSON header: sample rate, channel names and
units, the source (dataset, sensor, device), the start time (ISO 8601, UTC), the label vocabulary
and free-form metadata. Line 2 names the columns. Every row holds ``t`` (seconds since the start
time; strictly increasing, gaps allowed), one value per channel and, when the header says the
recording is labelled, a label name (empty when a sample carries none). docs/recording-format.md
is the user-facing description. The same writer serves the dataset import and ``har-agent record``.

Version 2 keeps the header and replaces the CSV rows with fixed-size binary records
(``"encoding": "binary"`` in the header; :mod:`agent.recording_bin`): the writer picks it for a
name ending in ``.bin`` or ``.bin.gz``, the reader from the magic line, whatever the name. The
CSV rows are parsed in :mod:`agent.recording_csv`; the writer is :mod:`agent.recording_writer`.
This module has the format's constants, :class:`Chunk`, the opening of a file (plain or gzip) and
the streaming reader with its checks that hold for both bodies (finite values, increasing times:
the rule :mod:`agent.recording_samples` states for the writer too; the rate).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from agent.errors import RecordingError
from agent.recording_bin import ENCODING as BINARY
from agent.recording_bin import BinaryBodyReader
from agent.recording_csv import MAX_LINE_CHARS, CsvBodyReader, RowError, corrupt, cut_off
from agent.recording_gzip import GzipReader, is_damage
from agent.recording_header import RecordingHeader
from agent.recording_samples import first_bad_sample
from agent.regular_file import NotRegular, open_regular_fd

MAGIC = "#har-recording/"
PARSE_BLOCK = 2048
"""Rows parsed per call of numpy's parser when streaming."""
DRAIN_LIMIT = 256 << 20
"""How much more of a gzip stream (decoded bytes) the reader reads past a bad row to learn
whether the stream is damaged (then the message says so): about a second at most."""
RATE_TOLERANCE = 0.1
"""How far (relative) the median time step of a recording's first rows may be from
1 / sample_rate_hz: live recordings jitter by a few percent, a wrong header is off by 2x."""
VERSION = 1
"""The CSV body's version; :data:`BINARY_VERSION` is the binary body's."""
BINARY_VERSION = 2
CSV = "csv"
GZIP = "gzip"


@dataclass(slots=True)
class Chunk:
    """A run of consecutive samples: times (s), values [n, channels] and optional labels.

    Treat it as immutable. It is a plain slotted class, not a frozen dataclass: one is made per
    window on the hot path, and a frozen dataclass's ``__init__`` costs four times as much."""

    t: np.ndarray
    values: np.ndarray
    labels: tuple[str | None, ...] | None = None
    max_step: float | None = None
    """When known, an upper bound of the steps between consecutive times in this chunk (the
    reader's block maximum): consumers that would look for gaps inside the chunk can skip the
    search when it is below their gap limit. ``None``: unknown (look)."""
    finite: bool = False
    """True when the producer has checked that every value is finite (the recording reader,
    which refuses NaN and Inf): the pipeline skips its per-window NaN/Inf check for windows
    made of such samples alone. False: unknown, checked per window (sensors, resampled
    samples)."""

    def __len__(self) -> int:
        return int(self.t.shape[0])


def open_bytes(path: Path | int, mode: str, gz: bool) -> IO[bytes]:
    """``path`` (or an open descriptor, then owned) opened in binary ``mode`` ("r" or "w"),
    through gzip when ``gz``."""
    fh = io.FileIO(path, mode)
    if gz:
        # mtime=0 and no stored name: the same samples always give the same bytes
        raw = gzip.GzipFile(filename="", mode=mode + "b", fileobj=fh, mtime=0)
        raw.myfileobj = fh  # what GzipFile does with files it opens itself: close on close
        return raw  # type: ignore[return-value]
    return io.BufferedReader(fh) if mode == "r" else io.BufferedWriter(fh)


def utf8_text(raw: IO[bytes], errors: str = "strict") -> IO[str]:
    """A UTF-8 text stream over ``raw`` (CSV's own newlines, untranslated)."""
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="")


class RecordingReader:
    """Stream a recording chunk by chunk; never loads the whole file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        where = str(self.path)
        self._body: CsvBodyReader | BinaryBodyReader | None = None
        self._raw, self._gz = _open_recording(self.path)
        self._fh: IO[str] | None = None
        try:
            try:
                head = self._raw.readline(MAX_LINE_CHARS + 1)
            except OSError as exc:
                raise RecordingError(f"{where}: cannot read recording ({exc})") from exc
            error = self._stream_error()
            if error is not None and not head.endswith(b"\n"):
                if is_damage(error):
                    raise RecordingError(corrupt(where, error, "line", None, 1))
                raise RecordingError(cut_off(where))
            if not head.startswith(MAGIC.encode()):
                raise RecordingError(f"{where}: not a har-agent recording (missing '{MAGIC}')")
            if len(head) > MAX_LINE_CHARS and not head.endswith(b"\n"):
                raise RecordingError(
                    f"{where}: the header line is longer than {MAX_LINE_CHARS:,} bytes (1 MiB)"
                )
            try:
                first = head.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordingError(f"{where}: the header is not UTF-8 ({exc})") from None
            self._body = self._open_body(first)
        except BaseException:
            self.close()
            raise

    @property
    def encoding(self) -> str:
        """``csv`` (format version 1) or ``binary`` (version 2)."""
        return BINARY if isinstance(self._body, BinaryBodyReader) else CSV

    @property
    def compression(self) -> str | None:
        """``gzip`` when the file is gzip-compressed (its first bytes say so), else None."""
        return GZIP if self._gz is not None else None

    def _stream_error(self) -> BaseException | None:
        """Why the gzip stream ended early, once it has (see :class:`GzipReader`); else None."""
        return self._gz.error if self._gz is not None else None

    def _open_body(self, first: str) -> CsvBodyReader | BinaryBodyReader:
        """Parse the header line; the reader of the body that follows it."""
        if not first.startswith(MAGIC):
            raise RecordingError(f"{self.path}: not a har-agent recording (missing '{MAGIC}')")
        version_text, _, header_text = first[len(MAGIC) :].partition(" ")
        if version_text not in (str(VERSION), str(BINARY_VERSION)):
            raise RecordingError(
                f"{self.path}: recording format version {version_text!r} is not supported "
                f"(this har-agent reads versions {VERSION} and {BINARY_VERSION})"
            )
        header = self.header = RecordingHeader.from_json(header_text, str(self.path))
        where = str(self.path)
        if version_text == str(VERSION):
            # bytes that are not UTF-8 (damage) become lone surrogates: rows that do not parse,
            # named by line, rather than an error for a whole block of text
            self._fh = utf8_text(self._raw, "surrogateescape")
            return CsvBodyReader(
                self._fh,
                where,
                header.channel_names,
                header.labelled,
                header.labels,
                self._stream_error,
            )
        encoding = json.loads(header_text).get("encoding")
        if encoding != BINARY:
            raise RecordingError(
                f"{where}: unknown recording encoding {encoding!r} (expected {BINARY!r})"
            )
        labels = header.labels if header.labelled else None
        if labels is not None and not labels:
            raise RecordingError(f"{where}: a labelled binary recording names no labels")
        return BinaryBodyReader(self._raw, where, len(header.channels), labels, self._stream_error)

    def _blocks(self, block: int) -> Iterator[_Block]:
        body = self._body
        assert body is not None
        for t, values, labels in body.blocks(block):
            yield _Block(t, values, labels, body.unit, body.position - len(t) + 1)

    def chunks(self, size: int = 256) -> Iterator[Chunk]:
        """Yield chunks of up to ``size`` samples, validating every row.

        Rows are parsed ``PARSE_BLOCK`` at a time (numpy's parser has a fixed cost per call), so
        a bad row is reported up to that many rows before the chunk that holds it is due.
        """
        last_t = -math.inf
        try:
            for blk in self._blocks(max(size, PARSE_BLOCK)):
                t = blk.t
                # the rule the writer keeps too: finite values and times, increasing times
                bad = first_bad_sample(t, blk.values, last_t)
                if bad is not None:
                    assert self._body is not None
                    raise self._body.row_error(blk.first + bad.index, bad.reason)
                steps = np.diff(t, prepend=last_t)
                if last_t == -math.inf:
                    self._check_rate(steps[1:], blk)
                last_t = float(t[-1])
                # the largest step between rows of this block: a bound for every chunk cut here
                max_step = float(steps[1:].max()) if len(t) > 1 else 0.0
                values, labels = blk.values, blk.labels
                if labels is not None and not isinstance(labels, tuple):
                    labels = tuple(labels)
                for a in range(0, len(t), size):
                    b = a + size
                    yield Chunk(  # first_bad_sample refused any NaN or Inf: the values are finite
                        t[a:b], values[a:b], None if labels is None else labels[a:b], max_step, True
                    )
        except RowError as exc:
            raise self._damaged(exc) from None
        finally:
            self.close()

    def _damaged(self, exc: RowError) -> RecordingError:
        """A bad row in a gzip stream: the damage of the stream, when reading on (a bounded
        while) shows that it is damaged, with the row as the first bad one; else ``exc``."""
        if self._gz is None:
            return exc
        try:
            left = DRAIN_LIMIT
            while self._gz.error is None and left > 0:
                got = len(self._raw.read(1 << 20))
                if not got:
                    break
                left -= got
        except OSError:
            return exc
        error = self._gz.error
        if not is_damage(error):
            return exc
        assert error is not None
        return RecordingError(
            corrupt(str(self.path), error, exc.unit, (exc.number, exc.reason), exc.number)
        )

    def _check_rate(self, steps: np.ndarray, blk: _Block) -> None:
        """The header's rate against the first block's median step: a wrong sample_rate_hz
        would make every step look like a gap (no windows at all) or resample wrongly."""
        if len(steps) < 8:
            return
        step = float(np.sort(steps)[len(steps) // 2])  # np.median's first call costs ~20 ms
        rate = self.header.sample_rate_hz
        if abs(step * rate - 1.0) > RATE_TOLERANCE:
            raise RecordingError(
                f"{self.path}: the header says {rate:g} Hz but {blk.unit}s {blk.first}-"
                f"{blk.first + len(steps)} are {1.0 / step:.4g} Hz apart (median step "
                f"{step:.4g} s); fix sample_rate_hz"
            )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._raw.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Block:
    """Decoded, not yet checked rows; ``unit first`` names the first (line or record)."""

    t: np.ndarray
    values: np.ndarray
    labels: Sequence[str | None] | None
    unit: str
    first: int


def _open_recording(path: Path) -> tuple[IO[bytes], GzipReader | None]:
    """The recording at ``path`` opened for reading, through gzip when its first bytes are
    gzip's magic number (the reader does not trust the name): the stream, and the gzip reader
    under it (None: not compressed). Opened once, as a regular file only
    (:func:`~agent.regular_file.open_regular_fd`): reading a FIFO or a device would block, or
    never end."""
    try:
        fd, _ = open_regular_fd(path)
    except (FileNotFoundError, NotADirectoryError):
        raise RecordingError(f"{path}: no such recording file") from None
    except NotRegular as exc:
        what = "is a folder," if stat.S_ISDIR(exc.mode) else f"is not a regular file ({exc.kind}),"
        raise RecordingError(f"{path}: {what} not a recording") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read recording ({exc.strerror or exc})") from exc
    try:
        gz = os.pread(fd, 2, 0) == b"\x1f\x8b"
    except OSError as exc:
        os.close(fd)
        raise RecordingError(f"{path}: cannot read recording ({exc.strerror or exc})") from exc
    if not gz:
        return open_bytes(fd, "r", False), None
    gzr = GzipReader(io.FileIO(fd, "r"))
    return io.BufferedReader(gzr), gzr


def read_recording(path: str | Path) -> tuple[RecordingHeader, Chunk]:
    """Read a whole recording into memory (for tools and tests; the agent streams)."""
    reader = RecordingReader(path)
    parts = list(reader.chunks(4096))
    if not parts:
        empty = np.zeros((0, len(reader.header.channels)), dtype=np.float32)
        labels: tuple[str | None, ...] | None = () if reader.header.labelled else None
        return reader.header, Chunk(np.zeros(0), empty, labels)
    t = np.concatenate([p.t for p in parts])
    values = np.concatenate([p.values for p in parts])
    joined: tuple[str | None, ...] | None = None
    if reader.header.labelled:
        joined = tuple(lbl for p in parts for lbl in (p.labels or ()))
    return reader.header, Chunk(t, values, joined, finite=True)  # the reader checked them
