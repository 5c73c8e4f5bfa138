"""Writing a recording (:mod:`agent.recording` describes the format): the body's encoding picked
from the name (CSV, or binary records for ``*.bin`` / ``*.bin.gz``), samples checked as they
come, and the file published under its name only when closed cleanly."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from agent.errors import RecordingError
from agent.recording import BINARY_VERSION, CSV, MAGIC, VERSION, open_bytes, utf8_text
from agent.recording_bin import ENCODING as BINARY
from agent.recording_bin import BinaryBodyWriter
from agent.recording_csv import MAX_LABEL_CHARS
from agent.recording_header import RecordingHeader
from agent.recording_samples import BadSample, as_stored, first_bad_sample
from agent.regular_file import NotRegular, open_regular_fd, stat_regular


def encoding_for(path: str | Path) -> str:
    """The body encoding a writer uses for ``path``: binary for ``*.bin`` / ``*.bin.gz`` (in any
    case: ``OUT.BIN`` too)."""
    name = Path(path).name.lower()
    return BINARY if name.endswith((".bin", ".bin.gz")) else CSV


class BlockRefused(RecordingError):
    """A block of samples that breaks the rule every sample keeps
    (:mod:`agent.recording_samples`), refused before any of it was written: the recording
    holds the :attr:`rows` samples written before it and stays readable, in :attr:`part` until
    the writer is closed (``record`` stops there and leaves that file, which
    ``recording recover`` publishes)."""

    def __init__(
        self, writer: RecordingWriter, bad: BadSample, stored_t: np.ndarray, n: int
    ) -> None:
        why = bad.reason
        if bad.rule == "increasing":
            before = writer.last_t if bad.index == 0 else float(stored_t[bad.index - 1])
            why += (
                f" (the sample before it is at {before}; sample times must be strictly increasing)"
            )
        super().__init__(
            f"{writer.path}: sample {bad.index + 1} of a block of {n}: {why}; nothing of the "
            "block was written"
        )
        self.part = writer.part
        self.rows = writer.rows


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
        self.part = self.path.with_name(self.path.name + ".part")
        # the finished file replaces the name: never a folder, a FIFO or a device node there
        # (a name that is renamed over, never read: checked without opening what is there)
        try:
            stat_regular(self.path)  # absent or out of reach: opening the .part file says why
        except NotRegular as exc:
            what = (
                "is a folder"
                if stat.S_ISDIR(exc.mode)
                else f"exists and is not a regular file ({exc.kind})"
            )
            raise RecordingError(
                f"{self.path}: {what}; refusing to replace it with a recording"
            ) from None
        try:  # a FIFO there would block the open until a reader comes: refused
            fd, _ = open_regular_fd(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            self._raw = open_bytes(fd, "w", gz=self.path.name.lower().endswith(".gz"))
        except NotRegular as exc:
            raise RecordingError(
                f"{self.part}: exists and is not a regular file ({exc.kind}); refusing to write "
                "the recording there"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RecordingError(f"{self.path}: cannot write the recording ({reason})") from exc
        self._flush_every = flush_every
        self._since_flush = 0
        self.last_t = -math.inf
        self.rows = 0
        if self._bin is not None:
            head = json.loads(header.to_json())
            head["encoding"] = BINARY
            line = f"{MAGIC}{BINARY_VERSION} {json.dumps(head, sort_keys=True)}\n"
            self._raw.write(line.encode("utf-8"))
            self._fh: IO[Any] = self._raw
        else:
            self._fh = utf8_text(self._raw)
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
        if not len(t_arr):
            return
        # the block checked as the reader will read it back, and refused whole before any of it
        # is written: the file keeps the samples before it, and stays readable
        rows: list[list[str]] = []
        if self._bin is not None:
            stored_t, stored = t_arr, as_stored(vals)
        else:  # what the reader parses: times to the microsecond, values to 7 digits
            rows = [[f"{t_arr[i]:.6f}", *(f"{v:.7g}" for v in vals[i])] for i in range(len(t_arr))]
            parsed = np.array(rows, dtype=np.float64)
            stored_t, stored = parsed[:, 0], as_stored(parsed[:, 1:])
        bad = first_bad_sample(stored_t, stored, self.last_t)
        if bad is not None:
            raise BlockRefused(self, bad, stored_t, len(t_arr))
        if self._bin is not None:
            self._fh.write(
                self._bin.encode(stored_t, stored, labels if self.header.labelled else None)
            )
        else:
            for i, row in enumerate(rows):
                if self.header.labelled:
                    assert labels is not None
                    row.append(labels[i] or "")
                self._csv.writerow(row)
        self.last_t = float(stored_t[-1])
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
        os.replace(self.part, self.path)

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
