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

from collections.abc import Iterator, Sequence
from typing import IO

import numpy as np

from agent.errors import RecordingError
from agent.recording_csv import GZIP_ERRORS, corrupt, cut_off, recover_command

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
    :attr:`position` is the last record read (1-based)."""

    unit = "record"

    def __init__(
        self, fh: IO[bytes], where: str, n_channels: int, labels: Sequence[str] | None
    ) -> None:
        self._fh = fh
        self._where = where
        self.dtype = record_dtype(n_channels, labels is not None)
        self._names: np.ndarray | None = None
        if labels is not None:
            self._names = np.array([None, *labels], dtype=object)
        self.records = 0

    @property
    def position(self) -> int:
        return self.records

    def blocks(
        self, block: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[str | None, ...] | None]]:
        """Yield ``(t, values, labels)`` for up to ``block`` records at a time."""
        size = self.dtype.itemsize
        while True:
            try:
                data = self._fh.read(block * size)
            except EOFError:
                raise RecordingError(cut_off(self._where)) from None
            except GZIP_ERRORS as exc:
                after = f" after record {self.records}"
                raise RecordingError(corrupt(self._where, exc, after)) from None
            except OSError as exc:
                raise RecordingError(
                    f"{self._where}: after record {self.records}: unreadable ({exc})"
                ) from exc
            if not data:
                return
            whole, extra = divmod(len(data), size)
            if extra:
                raise RecordingError(
                    f"{self._where}: truncated: record {self.records + whole + 1} has {extra} of "
                    f"{size} bytes (the recording was not finished); to keep its whole records: "
                    f"{recover_command(self._where)}"
                )
            rec = np.frombuffer(data, dtype=self.dtype)
            labels: tuple[str | None, ...] | None = None
            if self._names is not None:
                idx = rec["label"]
                if idx.shape[0] and int(idx.max()) >= self._names.shape[0]:
                    bad = int(np.argmax(idx >= self._names.shape[0]))
                    raise RecordingError(
                        f"{self._where}: record {self.records + bad + 1}: label index "
                        f"{int(idx[bad])} is not in the header's labels"
                    )
                labels = tuple(self._names[idx].tolist())
            self.records += whole
            t = rec["t"].astype(np.float64)  # a contiguous, writable copy
            values = np.ascontiguousarray(rec["v"], dtype=np.float32)
            if not values.flags.writeable:
                values = values.copy()
            yield t, values, labels
            if whole < block:
                return
