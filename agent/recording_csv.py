"""The CSV body of a recording (format version 1): rows parsed a block at a time.

:class:`CsvBodyReader` reads the column line and then the rows from a text stream positioned after
the header line, ``block`` rows per numpy parse (its C parser has a fixed cost per call), and names
the line of any row it cannot take. :class:`~agent.recording.RecordingReader` checks the times and
cuts the blocks into chunks; :mod:`agent.recording_bin` is the binary body (version 2).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from agent.errors import RecordingError
from agent.recording_gzip import is_damage
from agent.recording_samples import as_stored, first_bad_sample


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


def not_finished(where: str, unit: str = "rows") -> str:
    """How the messages for a recording cut off while being written end (a gzip stream without
    its end, a partial binary record, a last CSV line without its line break): the command that
    keeps its whole ``unit`` (rows or records)."""
    return f"(the recording was not finished); to keep its whole {unit}: {recover_command(where)}"


def cut_off(where: str, unit: str = "rows") -> str:
    """The message for a gzip stream that ends early (a recording never finished)."""
    return f"{where}: the gzip stream is cut off {not_finished(where, unit)}"


def damage(exc: BaseException, unit: str, bad: tuple[int, str] | None, upto: int) -> str:
    """Where a damaged gzip stream (zlib's ``exc``) goes wrong, as the reader and ``recover``
    say it: ``bad``, the first ``unit`` (line or record) decoded before zlib noticed that breaks
    a rule, with the reason; or, when every one decoded was good, ``upto``, the last decoded (the
    damage is in it or before: zlib may decode bad data for a while, or to the end, where the
    checksum fails)."""
    if bad is not None:
        noun = "row" if unit == "line" else unit
        return (
            f"the gzip stream is corrupt ({exc}): {unit} {bad[0]} is the first bad {noun} "
            f"({bad[1]})"
        )
    at = f"in {unit} 1" if upto <= 1 else f"at or before {unit} {upto}"
    return f"the gzip stream is corrupt {at} ({exc})"


def corrupt(
    where: str, exc: BaseException, unit: str, bad: tuple[int, str] | None, upto: int
) -> str:
    """The reader's message for a damaged gzip stream (:func:`damage`), with the command that
    keeps the whole rows before the damage when there are any."""
    text = f"{where}: {damage(exc, unit, bad, upto)}"
    first_row = 3 if unit == "line" else 1  # CSV rows start after the header and column lines
    if (bad[0] if bad is not None else upto) > first_row:
        noun = "rows" if unit == "line" else "records"
        before = "it" if bad is not None else "the damage"
        text += f"; to keep the whole {noun} before {before}: {recover_command(where)}"
    return text


class RowError(RecordingError):
    """A row the reader refuses: ``number`` is its line (CSV, the header is line 1) or record
    (binary, from 1), ``reason`` what is wrong with it. ``recover`` keeps the rows before the
    first one of a damaged gzip stream."""

    def __init__(self, where: str, unit: str, number: int, reason: str, hint: str = "") -> None:
        super().__init__(f"{where}: {unit} {number}: {reason}{hint}")
        self.unit, self.number, self.reason = unit, number, reason


MAX_LABEL_CHARS = 64
MAX_LINE_CHARS = 1 << 20
"""The longest line a reader takes (1 MiB of ASCII; a row is under 100 characters, a header a
few hundred): a longer one is refused as soon as it is seen, so a file without line breaks
costs neither memory nor time."""


class CsvBodyReader:
    """Decode CSV rows ``block`` at a time; :attr:`position` is the last line read (1-based).

    ``stream_error`` tells, once the stream has ended, whether it ended early
    (:attr:`agent.recording_gzip.GzipReader.error`): then the rows decoded before the damage are
    looked at for the first bad one, which the message names, and none of them is yielded.
    """

    unit = "line"

    def __init__(
        self,
        fh: IO[str],
        where: str,
        channel_names: Sequence[str],
        labelled: bool,
        vocabulary: Sequence[str] | None,
        stream_error: Callable[[], BaseException | None] = lambda: None,
    ) -> None:
        self._fh = fh
        self._where = where
        self._stream_error = stream_error
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
        self.cut_line: int | None = None
        """The last line, once read, when the file ends without a line break after it: a row
        refused there is a recording cut off while being written (its message says so)."""
        self._last_t = -math.inf  # the time of the last row yielded
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

    def row_error(self, line: int, reason: str) -> RowError:
        """The error for a bad row at ``line``; on a last line cut short, how to recover."""
        hint = ""
        if line == self.cut_line:
            hint = f": the last line is cut off {not_finished(self._where)}"
        return RowError(self._where, self.unit, line, reason, hint)

    def _ended_early(self, pending: list[str], upto: int) -> RecordingError | None:
        """When the stream has ended early, the error that says so; ``pending``: the whole rows
        decoded and not yet returned, after line :attr:`position`; ``upto``: the last line
        decoded, whole or not."""
        error = self._stream_error()
        if error is None:
            return None
        if not is_damage(error):
            return RecordingError(cut_off(self._where))
        bad = self._first_bad(pending, self.position + 1) if pending else None
        return RecordingError(corrupt(self._where, error, self.unit, bad, upto))

    def _next_row(self) -> list[str] | None:
        try:
            line = self._fh.readline(MAX_LINE_CHARS + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(
                f"{self._where}: line {self.position + 1}: unreadable ({exc})"
            ) from exc
        if not line.endswith("\n"):
            ended = self._ended_early([], self.position + 1)
            if ended is not None:
                raise ended
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
            except (OSError, UnicodeDecodeError) as exc:
                raise RecordingError(
                    f"{self._where}: after line {self.position}: unreadable ({exc})"
                ) from exc
            del self._buf[: self._pos]
            self._pos = 0
            if not block:
                upto = self.position + len(self._buf) + (1 if self._tail else 0)
                ended = self._ended_early(self._buf, upto)
                if ended is not None:
                    raise ended
                self._eof = True
                if self._tail:
                    self._buf.append(self._tail)
                    self._tail = ""
                    self.cut_line = self.position + len(self._buf)
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
            t = np.ascontiguousarray(arr[:, 0])
            self._last_t = float(t[-1])
            yield t, values, labels if self._labelled else None
            if len(lines) < block:
                return

    def _parse(self, lines: list[str], first_line: int) -> tuple[np.ndarray, list[str | None]]:
        """Parse rows fast (numpy's C parser); on any problem, find the first bad line and name
        it."""
        try:
            # the structured dtype makes loadtxt insist on exactly `width` fields in every row
            arr = np.loadtxt(lines, delimiter=",", dtype=self._row_dtype, comments=None, ndmin=1)
        except ValueError:
            pass
        else:
            # numpy skips empty lines, a recording has none: then _first_bad names it
            if arr.shape[0] == len(lines):
                try:
                    labels = _expand_runs(arr["label"], self._known) if self._labelled else []
                except _UnknownLabel:
                    pass
                else:
                    return arr["v"], labels
        bad = self._first_bad(lines, first_line)
        if bad is None:  # not reached: the parser refused one of them
            bad = (first_line, "unparseable row")
        raise self.row_error(*bad)

    def _first_bad(self, lines: list[str], first_line: int) -> tuple[int, str] | None:
        """The first of ``lines`` (the first is ``first_line``) that breaks a rule, as
        ``(line, reason)``: one the parser cannot take, a label the header does not allow, a
        value or time that is not finite, a time that does not increase (a row is checked
        against the rows before it: those after a bad one do not count)."""
        width = 1 + self._n_channels + (1 if self._labelled else 0)
        found: tuple[int, str] | None = None
        end = len(lines)
        for i, ln in enumerate(lines):
            reason = self._problem(ln, width)
            if reason is not None:
                found, end = (first_line + i, reason), i
                break
        if end == 0:
            return found
        try:
            arr = np.loadtxt(
                lines[:end], delimiter=",", dtype=self._row_dtype, comments=None, ndmin=1
            )
        except ValueError:  # not reached: each of them passed the checks above
            return found or (first_line, "unparseable row")
        if self._labelled:
            try:
                _expand_runs(arr["label"], self._known)
            except _UnknownLabel as exc:
                found, end = (first_line + exc.row, self._label_problem(exc.label)), exc.row
        v = arr["v"][:end]
        sample = first_bad_sample(np.ascontiguousarray(v[:, 0]), as_stored(v[:, 1:]), self._last_t)
        if sample is not None:
            return first_line + sample.index, sample.reason
        return found

    def _problem(self, line: str, width: int) -> str | None:
        """What the parser finds wrong with ``line`` on its own, or None."""
        if not line:
            return "blank line (a recording has one sample on every line after the column line)"
        if not line.isascii() and (reason := not_utf8(line)):
            return reason
        fields = line.split(",")
        if len(fields) != width:
            return f"expected {width} fields, got {len(fields)}"
        for name, text in zip(self._columns, fields, strict=False):
            if not _parses(text):
                return f"not a number ({name} is {text[:40]!r})"
        return None

    def _label_problem(self, label: str) -> str:
        if reason := not_utf8(label):
            return f"label {reason}"
        if len(label) > MAX_LABEL_CHARS:
            return f"label {label[:20]!r}... is longer than {MAX_LABEL_CHARS} characters"
        return (
            f"label {label!r} is not one of the header's labels "
            f"({', '.join(sorted(self._known or ()))})"
        )


_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""What the reader's text stream makes of a byte that is not UTF-8 (``surrogateescape``)."""


def not_utf8(text: str) -> str | None:
    """The reason to refuse ``text`` when it holds a byte that was not UTF-8, else None."""
    found = _NOT_UTF8.search(text)
    if found is None:
        return None
    return f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02x})"


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
        if label is not None and (
            len(label) > MAX_LABEL_CHARS
            or (known and label not in known)
            or (not label.isascii() and not_utf8(label))
        ):
            raise _UnknownLabel(a, label)
        out += [label] * (b - a)
    return out
