"""A gzip stream read as far as it goes: the reader of compressed recordings and of ``recover``.

:class:`gzip.GzipFile` raises as soon as it meets damage (a bad block, a checksum that does not
match) or an early end, and drops what it had decoded in that call: up to a read's worth of rows
just before the damage, the very rows that tell where it starts. :class:`GzipReader` hands out
every byte decoded before the problem, then ends the stream as if the file ended there, and keeps
the problem in :attr:`GzipReader.error` for whoever reaches that end: the body readers
(:mod:`agent.recording_csv`, :mod:`agent.recording_bin`) then look at the rows decoded before it
for the first bad one, and ``har-agent recording recover`` keeps the whole ones.
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

READ_BLOCK = 1 << 16
MAX_OUT = 1 << 18
"""The most bytes one call decodes: a stream that expands a thousandfold costs no more memory."""
STEP = 1 << 10
"""When a block of compressed bytes fails, it is decoded again this many bytes at a time, then
one byte at a time in the piece that fails: what zlib decodes before the damage is kept."""


class GzipCutOff(EOFError):
    """The file ended inside a gzip member (no end-of-stream marker: a recording not finished)."""


class GzipReader(io.RawIOBase):
    """The decompressed bytes of the gzip file ``fh`` (owned: closed with this stream), one or
    more members, zero padding after a member allowed (as :mod:`gzip` reads them)."""

    def __init__(self, fh: BinaryIO) -> None:
        super().__init__()
        self._fh = fh
        self._d = zlib.decompressobj(wbits=31)
        self._input = b""  # compressed bytes read, not yet decoded
        self._in_member = False
        self._out = memoryview(b"")
        self._done = False
        self.error: Exception | None = None
        """Why the stream ended early, once it has: :class:`GzipCutOff`, or the ``zlib.error``
        of damaged data (the bytes decoded before the damage were read first). None: it has not
        (yet)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._out:
            if self._done:
                return 0
            self._out = memoryview(self._fill())
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self) -> bytes:
        """The next piece of decoded bytes (perhaps none: call again until done)."""
        if not self._input:
            self._input = self._fh.read(READ_BLOCK)
            if not self._input:
                self._done = True
                if self._in_member:
                    self.error = GzipCutOff("the file ends inside the gzip stream")
                return b""
        data = self._input
        if self._d.eof:  # the member before ended: padding, or the next member
            data = data.lstrip(b"\0")
            self._input = data
            if not data:
                return b""
            self._d = zlib.decompressobj(wbits=31)
        self._in_member = True
        before = self._d.copy()
        try:
            out = self._d.decompress(data, MAX_OUT)
        except zlib.error as exc:
            self.error = exc
            self._done = True
            return _decoded_before_error(before, data)
        if self._d.eof:
            self._in_member = False
            self._input = self._d.unused_data
        else:
            self._input = self._d.unconsumed_tail
        return out

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._fh.close()


def _decoded_before_error(d: zlib._Decompress, data: bytes) -> bytes:
    """What ``d`` decodes of ``data`` before the zlib.error that the whole of it raises."""
    out: list[bytes] = []
    view = memoryview(data)
    for a in range(0, len(view), STEP):
        keep = d.copy()
        try:
            out.append(d.decompress(view[a : a + STEP]))
            continue
        except zlib.error:
            pass
        for i in range(a, min(a + STEP, len(view))):
            try:
                out.append(keep.decompress(view[i : i + 1]))
            except zlib.error:
                break
        break
    return b"".join(out)


def is_damage(error: BaseException | None) -> bool:
    """Whether ``error`` (a :attr:`GzipReader.error`) is damaged data rather than an early end."""
    return error is not None and not isinstance(error, GzipCutOff)
