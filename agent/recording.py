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
CSV rows are parsed in :mod:`agent.recording_csv`; this module has the header, the writer, and the
reader's checks that hold for both bodies (finite values, increasing times, the rate).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from agent.errors import RecordingError
from agent.recording_bin import ENCODING as BINARY
from agent.recording_bin import BinaryBodyReader, BinaryBodyWriter
from agent.recording_csv import (
    GZIP_ERRORS,
    MAX_LABEL_CHARS,
    MAX_LINE_CHARS,
    CsvBodyReader,
    corrupt,
    cut_off,
)

MAGIC = "#har-recording/"
MAX_RATE_HZ = 100_000.0
PARSE_BLOCK = 2048
"""Rows parsed per call of numpy's parser when streaming."""
RATE_TOLERANCE = 0.1
"""How far (relative) the median time step of a recording's first rows may be from
1 / sample_rate_hz: live recordings jitter by a few percent, a wrong header is off by 2x."""
VERSION = 1
"""The CSV body's version; :data:`BINARY_VERSION` is the binary body's."""
BINARY_VERSION = 2
CSV = "csv"


@dataclass(frozen=True)
class Channel:
    """One signal column: its name, its physical unit (``g``, ``rad/s``, ...) and, for a sensor
    channel, the full-scale value the sensor clips at (samples there are saturated)."""

    name: str
    unit: str
    full_scale: float | None = None


def _channel_json(c: Channel) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "unit": c.unit}
    if c.full_scale is not None:
        out["full_scale"] = c.full_scale
    return out


MAX_HEADER_DEPTH = 32
"""How deeply the header's JSON may nest (``source`` and ``meta`` are free-form objects)."""


class _BadField(Exception):
    """A header field of the wrong type or value; the message names the field."""


def _kind(value: Any) -> str:
    """What a JSON value is, for messages (``a string ('50')``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float | str):
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"a {'string' if isinstance(value, str) else 'number'} ({text})"
    return "a list" if isinstance(value, list) else "an object"


def _number(value: Any, what: str) -> float:
    """A JSON number (not a boolean) as a float; a huge integer becomes inf (refused later)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadField(f"{what} must be a number, not {_kind(value)}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_HEADER_DEPTH:
                stack.extend(
                    (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _channel_from(raw: Any, i: int) -> Channel:
    if not isinstance(raw, dict):
        raise _BadField(
            f'channels[{i}] must be an object {{"name": ..., "unit": ...}}, not {_kind(raw)}'
        )
    name, unit = raw.get("name"), raw.get("unit")
    if not isinstance(name, str) or not name:
        raise _BadField(f"channels[{i}].name must be a non-empty string, not {_kind(name)}")
    if not isinstance(unit, str):
        raise _BadField(f"channel {name!r}: unit must be a string, not {_kind(unit)}")
    fs = raw.get("full_scale")
    if fs is None:
        return Channel(name, unit)
    scale = _number(fs, f"channel {name!r}: full_scale")
    if not (math.isfinite(scale) and scale > 0):
        raise _BadField(f"channel {name!r}: full_scale must be a positive number")
    return Channel(name, unit, scale)


@dataclass(frozen=True)
class RecordingHeader:
    """What a recording says about itself."""

    sample_rate_hz: float
    channels: tuple[Channel, ...]
    start_time: str
    source: dict[str, Any] = field(default_factory=dict)
    labelled: bool = False
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    def to_json(self) -> str:
        return json.dumps(
            {
                "sample_rate_hz": self.sample_rate_hz,
                "channels": [_channel_json(c) for c in self.channels],
                "start_time": self.start_time,
                "source": self.source,
                "labelled": self.labelled,
                "labels": list(self.labels),
                "meta": self.meta,
            },
            sort_keys=True,
        )

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> RecordingHeader:
        """The header from its parsed JSON, every field of its JSON type (a boolean is not a
        number, a string is not a boolean nor a list); :class:`_BadField` names the field."""
        for key in ("sample_rate_hz", "channels", "start_time"):
            if key not in raw:
                raise _BadField(f"{key} is missing (required)")
        chans = raw["channels"]
        if not isinstance(chans, list):
            raise _BadField(f"channels must be a list of channel objects, not {_kind(chans)}")
        start = raw["start_time"]
        if not isinstance(start, str):
            raise _BadField(f"start_time must be an ISO 8601 string, not {_kind(start)}")
        labelled = raw.get("labelled", False)
        if not isinstance(labelled, bool):
            raise _BadField(f"labelled must be true or false, not {_kind(labelled)}")
        labels = raw.get("labels", [])
        if not isinstance(labels, list):
            raise _BadField(f"labels must be a list of label names, not {_kind(labels)}")
        for i, name in enumerate(labels):
            if not isinstance(name, str) or not name:
                raise _BadField(f"labels[{i}] must be a non-empty string, not {_kind(name)}")
        objects = {key: raw.get(key, {}) for key in ("source", "meta")}
        for key, value in objects.items():
            if not isinstance(value, dict):
                raise _BadField(f"{key} must be a JSON object, not {_kind(value)}")
        return cls(
            sample_rate_hz=_number(raw["sample_rate_hz"], "sample_rate_hz"),
            channels=tuple(_channel_from(c, i) for i, c in enumerate(chans)),
            start_time=start,
            source=dict(objects["source"]),
            labelled=labelled,
            labels=tuple(labels),
            meta=dict(objects["meta"]),
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> RecordingHeader:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RecordingError(f"{where}: malformed recording header ({exc})") from None
        except RecursionError:
            raise RecordingError(
                f"{where}: malformed recording header (nested more than {MAX_HEADER_DEPTH} deep)"
            ) from None
        if not isinstance(raw, dict):
            raise RecordingError(
                f"{where}: malformed recording header (a JSON object is expected, not {_kind(raw)})"
            )
        if _depth(raw) > MAX_HEADER_DEPTH:
            raise RecordingError(
                f"{where}: malformed recording header (nested more than {MAX_HEADER_DEPTH} deep)"
            )
        try:
            header = cls._from_dict(raw)
        except _BadField as exc:
            raise RecordingError(f"{where}: recording header: {exc}") from None
        if not (math.isfinite(header.sample_rate_hz) and 0 < header.sample_rate_hz <= MAX_RATE_HZ):
            raise RecordingError(
                f"{where}: sample_rate_hz must be a positive number up to {MAX_RATE_HZ:g}"
            )
        if not header.channels:
            raise RecordingError(f"{where}: the header names no channels")
        try:
            datetime.fromisoformat(header.start_time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise RecordingError(
                f"{where}: start_time {header.start_time!r} is not ISO 8601"
            ) from exc
        if len(set(header.channel_names)) != len(header.channels):
            raise RecordingError(f"{where}: duplicate channel names in header")
        return header


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive samples: times (s), values [n, channels] and optional labels."""

    t: np.ndarray
    values: np.ndarray
    labels: tuple[str | None, ...] | None = None
    max_step: float | None = None
    """When known, an upper bound of the steps between consecutive times in this chunk (the
    reader's block maximum): consumers that would look for gaps inside the chunk can skip the
    search when it is below their gap limit. ``None``: unknown (look)."""

    def __len__(self) -> int:
        return int(self.t.shape[0])


def _open_bytes(path: Path, mode: str, gz: bool) -> IO[bytes]:
    if gz:
        # mtime=0 and no stored name: the same samples always give the same bytes
        fh = io.FileIO(path, mode)  # owned and closed by the GzipFile below
        raw = gzip.GzipFile(filename="", mode=mode + "b", fileobj=fh, mtime=0)
        raw.myfileobj = fh  # what GzipFile does with files it opens itself: close on close
        return raw  # type: ignore[return-value]
    return open(path, mode + "b")


def _text(raw: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def encoding_for(path: str | Path) -> str:
    """The body encoding a writer uses for ``path``: binary for ``*.bin`` / ``*.bin.gz``."""
    name = Path(path).name
    return BINARY if name.endswith((".bin", ".bin.gz")) else CSV


class RecordingWriter:
    """Write a recording; the file appears under its final name only when closed cleanly.

    Rows go to ``<path>.part`` and are flushed every ``flush_every`` rows, so a crash leaves a
    readable partial file behind rather than a corrupt target.
    """

    def __init__(
        self,
        path: str | Path,
        header: RecordingHeader,
        flush_every: int = 500,
        encoding: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self.encoding = encoding or encoding_for(self.path)
        if self.encoding not in (CSV, BINARY):
            raise RecordingError(f"{self.path}: unknown recording encoding {self.encoding!r}")
        self._bin: BinaryBodyWriter | None = None
        self._csv: Any = None
        if self.encoding == BINARY:
            if header.labelled and not header.labels:
                raise RecordingError(
                    f"{self.path}: a labelled binary recording needs its label vocabulary "
                    "(header labels)"
                )
            self._bin = BinaryBodyWriter(
                str(self.path), len(header.channels), header.labels if header.labelled else None
            )
        self._part = self.path.with_name(self.path.name + ".part")
        # the finished file replaces the name: never a folder, a FIFO or a device node there
        try:
            mode: int | None = self.path.stat().st_mode
        except OSError:
            mode = None  # absent (or out of reach: opening the .part file says why)
        if mode is not None and not stat.S_ISREG(mode):
            what = "is a folder" if stat.S_ISDIR(mode) else "exists and is not a regular file"
            raise RecordingError(f"{self.path}: {what}; refusing to replace it with a recording")
        try:
            self._raw = _open_bytes(self._part, "w", gz=self.path.name.endswith(".gz"))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RecordingError(f"{self.path}: cannot write the recording ({reason})") from exc
        self._flush_every = flush_every
        self._since_flush = 0
        self._last_t = -math.inf
        self.rows = 0
        if self._bin is not None:
            head = json.loads(header.to_json())
            head["encoding"] = BINARY
            line = f"{MAGIC}{BINARY_VERSION} {json.dumps(head, sort_keys=True)}\n"
            self._raw.write(line.encode("utf-8"))
            self._fh: IO[Any] = self._raw
        else:
            self._fh = _text(self._raw)
            self._csv = csv.writer(self._fh, lineterminator="\n")
            self._fh.write(f"{MAGIC}{VERSION} {header.to_json()}\n")
            cols = ["t", *header.channel_names] + (["label"] if header.labelled else [])
            self._csv.writerow(cols)

    def write(
        self,
        t: Sequence[float] | np.ndarray,
        values: np.ndarray,
        labels: Sequence[str | None] | None = None,
    ) -> None:
        """Append samples: ``t`` [n] seconds since start, ``values`` [n, channels]."""
        t_arr = np.asarray(t, dtype=np.float64)
        vals = np.asarray(values, dtype=np.float64)
        n_ch = len(self.header.channels)
        if vals.ndim != 2 or vals.shape != (t_arr.shape[0], n_ch):
            raise RecordingError(
                f"{self.path}: expected values shaped ({t_arr.shape[0]}, {n_ch}), got {vals.shape}"
            )
        if self.header.labelled and (labels is None or len(labels) != len(t_arr)):
            raise RecordingError(f"{self.path}: a labelled recording needs one label per sample")
        if labels is not None and any(lbl and any(c in lbl for c in ',"\r\n') for lbl in labels):
            raise RecordingError(f"{self.path}: labels may not contain commas, quotes or newlines")
        if labels is not None and any(lbl and len(lbl) > MAX_LABEL_CHARS for lbl in labels):
            raise RecordingError(f"{self.path}: labels are at most {MAX_LABEL_CHARS} characters")
        if len(t_arr) and (t_arr[0] <= self._last_t or np.any(np.diff(t_arr) <= 0)):
            raise RecordingError(f"{self.path}: sample times must be strictly increasing")
        if self._bin is not None:
            self._fh.write(self._bin.encode(t_arr, vals, labels if self.header.labelled else None))
        else:
            for i in range(len(t_arr)):
                row = [f"{t_arr[i]:.6f}", *(f"{v:.7g}" for v in vals[i])]
                if self.header.labelled:
                    assert labels is not None
                    row.append(labels[i] or "")
                self._csv.writerow(row)
        if len(t_arr):
            self._last_t = float(t_arr[-1])
        self.rows += len(t_arr)
        self._since_flush += len(t_arr)
        if self._since_flush >= self._flush_every:
            self._fh.flush()
            self._since_flush = 0

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        self._fh.close()
        os.replace(self._part, self.path)

    def abort(self) -> None:
        """Close without publishing the file (the ``.part`` file is kept for inspection)."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RecordingReader:
    """Stream a recording chunk by chunk; never loads the whole file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        where = str(self.path)
        problem = _not_a_regular_file(self.path)
        if problem:
            raise RecordingError(f"{where}: {problem}")
        self._body: CsvBodyReader | BinaryBodyReader | None = None
        try:
            self._raw = _open_bytes(self.path, "r", gz=_is_gzip(self.path))
        except OSError as exc:
            raise RecordingError(f"{where}: cannot read recording ({exc})") from exc
        self._fh: IO[str] | None = None
        try:
            try:
                head = self._raw.readline(MAX_LINE_CHARS + 1)
            except EOFError:
                raise RecordingError(cut_off(where)) from None
            except GZIP_ERRORS as exc:
                raise RecordingError(corrupt(where, exc)) from None
            except OSError as exc:
                raise RecordingError(f"{where}: cannot read recording ({exc})") from exc
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
            self._fh = _text(self._raw)
            return CsvBodyReader(
                self._fh, where, header.channel_names, header.labelled, header.labels
            )
        encoding = json.loads(header_text).get("encoding")
        if encoding != BINARY:
            raise RecordingError(
                f"{where}: unknown recording encoding {encoding!r} (expected {BINARY!r})"
            )
        labels = header.labels if header.labelled else None
        if labels is not None and not labels:
            raise RecordingError(f"{where}: a labelled binary recording names no labels")
        return BinaryBodyReader(self._raw, where, len(header.channels), labels)

    def _blocks(self, block: int) -> Iterator[_Block]:
        body = self._body
        assert body is not None
        for t, values, labels in body.blocks(block):
            first = body.position - len(t) + 1
            # the whole block at once (a per-row check costs ~35 us a block); rows only if bad
            if not (np.isfinite(values).all() and np.isfinite(t).all()):
                bad = int(np.argmin(np.isfinite(values).all(axis=1) & np.isfinite(t)))
                raise RecordingError(
                    f"{self.path}: {body.unit} {first + bad}: value is not finite (NaN, Inf, or "
                    "beyond float32's range)"
                )
            yield _Block(t, values, labels, body.unit, first)

    def chunks(self, size: int = 256) -> Iterator[Chunk]:
        """Yield chunks of up to ``size`` samples, validating every row.

        Rows are parsed ``PARSE_BLOCK`` at a time (numpy's parser has a fixed cost per call), so
        a bad row is reported up to that many rows before the chunk that holds it is due.
        """
        last_t = -math.inf
        try:
            for blk in self._blocks(max(size, PARSE_BLOCK)):
                t = blk.t
                steps = np.diff(t, prepend=last_t)
                if not np.all(steps > 0):
                    bad = int(np.argmin(steps > 0))
                    raise RecordingError(
                        f"{self.path}: {blk.unit} {blk.first + bad}: time {t[bad]} does not "
                        "increase"
                    )
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
                    yield Chunk(
                        t[a:b], values[a:b], None if labels is None else labels[a:b], max_step
                    )
        finally:
            self.close()

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
    """Decoded, not yet time-checked rows; ``unit first`` names the first (line or record)."""

    t: np.ndarray
    values: np.ndarray
    labels: Sequence[str | None] | None
    unit: str
    first: int


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a recording (None: it is a regular file). A FIFO or a
    device is refused before it is opened: reading one would block, or never end."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "no such recording file"
    except OSError as exc:
        return f"cannot read recording ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a recording"
    return "is not a regular file (a device, FIFO or socket), not a recording"


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes (the reader does not trust the name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


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
    return reader.header, Chunk(t, values, joined)
