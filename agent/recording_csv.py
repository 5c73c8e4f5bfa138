"""The CSV body of a recording (format version 1): rows parsed a block at a time.

:class:`CsvBodyReader` reads the column line and then the rows from a text stream positioned after
the header line, ``block`` rows per numpy parse (its C parser has a fixed cost per call), and names
the line of any row it cannot take. :class:`~agent.recording.RecordingReader` checks the times and
cuts the blocks into chunks; :mod:`agent.recording_bin` is the binary body (version 2).
"""

from __future__ import annotations

import gzip
import shlex
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from agent.errors import RecordingError
from agent.recording_samples import as_stored


def recover_command(where: str) -> str:
    """The command that keeps the whole rows of the recording ``where``: a ``.part`` file names
    its output itself; any other name needs ``--out`` (a sibling, ``.recovered`` put before its
    ``.har`` suffixes, which pick the encoding)."""
    if where.endswith(".part"):
        return f"har-agent recording recover {shlex.quote(where)}"
    path = Path(where)
    cut = path.name.find(".har.")
    name = path.name[:cut] if cut > 0 else path.name
    suffixes = path.name[cut:] if cut > 0 else ".har.csv"
    out = path.with_name(f"{name}.recovered{suffixes}")
    return f"har-agent recording recover {shlex.quote(where)} --out {shlex.quote(str(out))}"


def cut_off(where: str) -> str:
    """The message for a gzip stream that ends early (a recording never finished)."""
    return (
        f"{where}: the gzip stream is cut off (the recording was not finished); "
        f"to keep its whole rows: {recover_command(where)}"
    )


def corrupt(where: str, exc: Exception, after: str = "") -> str:
    """The message for a gzip stream whose data is damaged (zlib.error, gzip.BadGzipFile)."""
    return f"{where}: the gzip stream is corrupt{after} ({exc}); the file is damaged"


GZIP_ERRORS = (zlib.error, gzip.BadGzipFile)
"""What a damaged gzip stream raises while it is read (BadGzipFile is an OSError: catch these
first)."""

MAX_LABEL_CHARS = 64
MAX_LINE_CHARS = 1 << 20
"""The longest line a reader takes (1 MiB of ASCII; a row is under 100 characters, a header a
few hundred): a longer one is refused as soon as it is seen, so a file without line breaks
costs neither memory nor time."""


class CsvBodyReader:
    """Decode CSV rows ``block`` at a time; :attr:`position` is the last line read (1-based)."""

    unit = "line"

    def __init__(
        self,
        fh: IO[str],
        where: str,
        channel_names: Sequence[str],
        labelled: bool,
        vocabulary: Sequence[str] | None,
    ) -> None:
        self._fh = fh
        self._where = where
        self._n_channels = len(channel_names)
        self._columns = ["t", *channel_names]
        self._labelled = labelled
        fields: list[tuple[str, str, tuple[int]] | tuple[str, str]] = [
            ("v", "f8", (1 + self._n_channels,))
        ]
        if labelled:
            # one character more than allowed: a longer label shows as too long, not cut short
            fields.append(("label", f"U{MAX_LABEL_CHARS + 1}"))
        self._row_dtype = np.dtype(fields)
        self._known = frozenset(vocabulary) if vocabulary else None
        """Labels a row may carry (None: any; the header names no vocabulary)."""
        self.position = 1  # the header line
        self._buf: list[str] = []
        self._pos = 0
        self._tail = ""
        self._eof = False
        cols = self._next_row()
        expected = ["t", *channel_names] + (["label"] if labelled else [])
        if cols is None:
            raise RecordingError(
                f"{where}: the column line (line 2, {','.join(expected)}) is missing: the file "
                "ends after the header"
            )
        if cols != expected:
            raise RecordingError(f"{where}: column line {cols} does not match header {expected}")

    def _next_row(self) -> list[str] | None:
        try:
            line = self._fh.readline(MAX_LINE_CHARS + 1)
        except EOFError:
            raise RecordingError(cut_off(self._where)) from None
        except GZIP_ERRORS as exc:
            raise RecordingError(
                corrupt(self._where, exc, f" in line {self.position + 1}")
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(
                f"{self._where}: line {self.position + 1}: unreadable ({exc})"
            ) from exc
        if not line:
            return None
        self.position += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            raise RecordingError(self._too_long(self.position))
        return line.rstrip("\r\n").split(",")

    def _too_long(self, line: int) -> str:
        return (
            f"{self._where}: line {line} is longer than {MAX_LINE_CHARS:,} characters (1 MiB): "
            "not a recording row"
        )

    def _read_lines(self, size: int) -> list[str]:
        """The next ``size`` lines (fewer at the end), read in 64 KiB blocks."""
        while len(self._buf) - self._pos < size and not self._eof:
            try:
                block = self._fh.read(1 << 16)
            except EOFError:
                raise RecordingError(cut_off(self._where)) from None
            except GZIP_ERRORS as exc:
                done = self.position + len(self._buf) - self._pos
                raise RecordingError(corrupt(self._where, exc, f" after line {done}")) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise RecordingError(
                    f"{self._where}: after line {self.position}: unreadable ({exc})"
                ) from exc
            del self._buf[: self._pos]
            self._pos = 0
            if not block:
                self._eof = True
                if self._tail:
                    self._buf.append(self._tail)
                    self._tail = ""
                break
            # the tail is at most MAX_LINE_CHARS long (refused below), so however long a line
            # is, this join copies no more than that: reading stays linear in the file's length
            crlf = "\r" in block or self._tail.endswith("\r")
            parts = (self._tail + block).split("\n")
            if crlf:
                parts = [part.rstrip("\r") for part in parts]
            self._tail = parts.pop()
            if len(self._tail) > MAX_LINE_CHARS or (parts and len(parts[0]) > MAX_LINE_CHARS):
                # the long one is the first line after those buffered: parts[0], or the tail
                raise RecordingError(self._too_long(self.position + len(self._buf) + 1))
            self._buf.extend(parts)
        lines = self._buf[self._pos : self._pos + size]
        self._pos += len(lines)
        return lines

    def blocks(
        self, block: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[str | None] | None]]:
        """Yield ``(t, values, labels)`` for up to ``block`` rows at a time; values are float32
        (as the agent computes), times float64."""
        while True:
            lines = self._read_lines(block)
            if not lines:
                return
            first_line = self.position + 1
            self.position += len(lines)
            arr, labels = self._parse(lines, first_line)
            values = as_stored(arr[:, 1:])  # beyond float32 -> inf, which the reader refuses
            yield np.ascontiguousarray(arr[:, 0]), values, labels if self._labelled else None
            if len(lines) < block:
                return

    def _labels(self, arr: np.ndarray, first_line: int) -> list[str | None]:
        if not self._labelled:
            return []
        try:
            return _expand_runs(arr["label"], self._known)
        except _UnknownLabel as exc:
            where = f"{self._where}: line {first_line + exc.row}"
            if len(exc.label) > MAX_LABEL_CHARS:
                raise RecordingError(
                    f"{where}: label {exc.label[:20]!r}... is longer than {MAX_LABEL_CHARS} "
                    "characters"
                ) from None
            raise RecordingError(
                f"{where}: label {exc.label!r} is not one of the header's labels "
                f"({', '.join(sorted(self._known or ()))})"
            ) from None

    def _parse(self, lines: list[str], first_line: int) -> tuple[np.ndarray, list[str | None]]:
        """Parse rows fast (numpy's C parser); on any problem, find the bad line and name it."""
        n_ch = self._n_channels
        width = 1 + n_ch + (1 if self._labelled else 0)
        try:
            # the structured dtype makes loadtxt insist on exactly `width` fields in every row
            arr = np.loadtxt(lines, delimiter=",", dtype=self._row_dtype, comments=None, ndmin=1)
        except ValueError:
            pass
        else:
            # numpy skips empty lines, a recording has none: then the loop below names it
            if arr.shape[0] == len(lines):
                return arr["v"], self._labels(arr, first_line)
        # the error path: find the first bad line with the same parser, and name it
        for i, ln in enumerate(lines):
            where = f"{self._where}: line {first_line + i}"
            if not ln:
                raise RecordingError(
                    f"{where}: blank line (a recording has one sample on every line after the "
                    "column line)"
                )
            fields = ln.split(",")
            if len(fields) != width:
                raise RecordingError(f"{where}: expected {width} fields, got {len(fields)}")
            for name, text in zip(self._columns, fields, strict=False):
                if not _parses(text):
                    raise RecordingError(f"{where}: not a number ({name} is {text[:40]!r})")
        raise RecordingError(  # not reached: one of the lines failed above
            f"{self._where}: lines {first_line}-{first_line + len(lines) - 1}: unparseable rows"
        )


def _parses(text: str) -> bool:
    """Whether numpy's parser (the one that reads the rows) takes ``text`` as a number:
    Python's float() also takes ``1_000`` and other digits than ASCII ones."""
    if not text:  # (numpy skips an empty line rather than refuse it)
        return False
    try:
        np.loadtxt([text], delimiter=",", dtype=np.float64, comments=None, ndmin=1)
    except ValueError:
        return False
    return True


class _UnknownLabel(Exception):
    def __init__(self, row: int, label: str) -> None:
        self.row, self.label = row, label


def _expand_runs(labels: np.ndarray, known: frozenset[str] | None = None) -> list[str | None]:
    """Per-row labels as Python strings (empty -> None), one string object per run of equal
    labels: labels change a few times a minute, so this beats converting every row. With
    ``known``, a label outside it raises :class:`_UnknownLabel` (checked once per run)."""
    if labels.shape[0] == 0:
        return []
    starts = [0, *(np.flatnonzero(labels[1:] != labels[:-1]) + 1).tolist(), labels.shape[0]]
    out: list[str | None] = []
    for a, b in zip(starts[:-1], starts[1:], strict=False):
        label = str(labels[a]) or None
        if label is not None and (len(label) > MAX_LABEL_CHARS or (known and label not in known)):
            raise _UnknownLabel(a, label)
        out += [label] * (b - a)
    return out
