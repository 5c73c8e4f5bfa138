"""The binary body of a recording (format version 2, ``"encoding": "binary"``).

After the header line (magic, version, JSON) come fixed-size little-endian records, one per
sample, in time order::

    t      float64   seconds since the header's start_time
    values float32   one per channel, in header order
    label  uint16    only when the header says labelled: 0 = no label, k = header labels[k-1]

Nothing else: no column line, no padding, no footer. A reader takes N records with one read of
``N * itemsize`` bytes and one ``np.frombuffer``; a file whose length leaves a partial record at
the end is truncated and refused. Values are float32 because that is what the agent computes
with (the CSV body's ``%.7g`` carries the same precision); time stays float64 so that hours of
samples keep microsecond steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import IO

import numpy as np

from agent.errors import RecordingError
from agent.recording_csv import RowError, corrupt, cut_off, not_finished
from agent.recording_gzip import is_damage
from agent.recording_samples import first_bad_sample

ENCODING = "binary"
MAX_LABELS = 65_535


def record_dtype(n_channels: int, labelled: bool) -> np.dtype:
    """The packed record: ``t`` <f8, ``v`` <f4 × channels, and ``label`` <u2 when labelled."""
    fields: list[tuple[str, str] | tuple[str, str, tuple[int]]] = [
        ("t", "<f8"),
        ("v", "<f4", (n_channels,)),
    ]
    if labelled:
        fields.append(("label", "<u2"))
    return np.dtype(fields)


class BinaryBodyWriter:
    """Encode samples as records; labels are looked up in the header's vocabulary."""

    def __init__(self, where: str, n_channels: int, labels: Sequence[str] | None) -> None:
        self._where = where
        self._dtype = record_dtype(n_channels, labels is not None)
        self._index: dict[str | None, int] | None = None
        if labels is not None:
            if len(labels) > MAX_LABELS:
                raise RecordingError(f"{where}: at most {MAX_LABELS} labels in a binary recording")
            self._index = {None: 0, "": 0, **{name: i + 1 for i, name in enumerate(labels)}}

    def encode(
        self, t: np.ndarray, values: np.ndarray, labels: Sequence[str | None] | None
    ) -> bytes:
        rec = np.empty(t.shape[0], dtype=self._dtype)
        rec["t"] = t
        rec["v"] = values
        if self._index is not None:
            assert labels is not None
            try:
                rec["label"] = [self._index[lbl] for lbl in labels]
            except KeyError as exc:
                raise RecordingError(
                    f"{self._where}: label {exc.args[0]!r} is not in the header's labels"
                ) from None
        return rec.tobytes()


class BinaryBodyReader:
    """Decode records ``block`` at a time from a byte stream positioned after the header;
    :attr:`position` is the last record read (1-based). ``stream_error``: as for
    :class:`~agent.recording_csv.CsvBodyReader`."""

    unit = "record"

    def __init__(
        self,
        fh: IO[bytes],
        where: str,
        n_channels: int,
        labels: Sequence[str] | None,
        stream_error: Callable[[], BaseException | None] = lambda: None,
    ) -> None:
        self._fh = fh
        self._where = where
        self._stream_error = stream_error
        self.dtype = record_dtype(n_channels, labels is not None)
        self._names: np.ndarray | None = None
        if labels is not None:
            self._names = np.array([None, *labels], dtype=object)
        self.records = 0
        self._last_t = -math.inf  # the time of the last record yielded

    @property
    def position(self) -> int:
        return self.records

    def row_error(self, record: int, reason: str) -> RowError:
        return RowError(self._where, self.unit, record, reason)

    def blocks(
        self, block: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[str | None, ...] | None]]:
        """Yield ``(t, values, labels)`` for up to ``block`` records at a time."""
        size = self.dtype.itemsize
        while True:
            try:
                data = self._fh.read(block * size)
            except OSError as exc:
                raise RecordingError(
                    f"{self._where}: after record {self.records}: unreadable ({exc})"
                ) from exc
            whole, extra = divmod(len(data), size)
            if whole < block:
                self._check_end(data[: whole * size], whole + (1 if extra else 0))
            if not data:
                return
            if extra:
                raise RecordingError(
                    f"{self._where}: truncated: record {self.records + whole + 1} has {extra} of "
                    f"{size} bytes {not_finished(self._where, 'records')}"
                )
            rec = np.frombuffer(data, dtype=self.dtype)
            labels: tuple[str | None, ...] | None = None
            if self._names is not None:
                idx = rec["label"]
                if idx.shape[0] and int(idx.max()) >= self._names.shape[0]:
                    bad = self._first_bad(rec, self.records + 1)
                    assert bad is not None  # a label index, if no record before it
                    raise self.row_error(*bad)
                labels = tuple(self._names[idx].tolist())
            self.records += whole
            t = rec["t"].astype(np.float64)  # a contiguous, writable copy
            values = np.ascontiguousarray(rec["v"], dtype=np.float32)
            if not values.flags.writeable:
                values = values.copy()
            self._last_t = float(t[-1])
            yield t, values, labels
            if whole < block:
                return

    def _check_end(self, data: bytes, decoded: int) -> None:
        """At the end of the stream: refuse one that ended early. ``data``: its whole records
        not yet yielded; ``decoded``: how many records were decoded, the last perhaps in part."""
        error = self._stream_error()
        if error is None:
            return
        if not is_damage(error):
            raise RecordingError(cut_off(self._where, "records"))
        rec = np.frombuffer(data, dtype=self.dtype)
        bad = self._first_bad(rec, self.records + 1) if rec.shape[0] else None
        upto = max(self.records + decoded, 1)
        raise RecordingError(corrupt(self._where, error, self.unit, bad, upto))

    def _first_bad(self, rec: np.ndarray, first: int) -> tuple[int, str] | None:
        """The first of the records ``rec`` (the first is record ``first``) that breaks a rule,
        as ``(record, reason)``: a label index beyond the header's labels, a time or value that
        is not finite, a time that does not increase."""
        found: tuple[int, str] | None = None
        end = rec.shape[0]
        if self._names is not None:
            over = rec["label"] >= self._names.shape[0]
            if over.any():
                end = int(np.argmax(over))
                label = int(rec["label"][end])
                found = (first + end, f"label index {label} is not in the header's labels")
        t = rec["t"][:end].astype(np.float64)
        values = np.asarray(rec["v"][:end], dtype=np.float32)
        sample = first_bad_sample(t, values, self._last_t)
        if sample is not None:
            return first + sample.index, sample.reason
        return found
