"""A damaged gzip recording: the reader (``replay``, ``recording info``) names the first bad row
that zlib decoded before it noticed, or says honestly that the damage is at or before the last
line it decoded; ``recording recover`` says the same and keeps the whole, good rows before it.
Rows after the damage never reach the caller. :class:`~agent.recording_gzip.GzipReader` itself
reads what :mod:`gzip` reads."""

from __future__ import annotations

import gzip
import io
import os
import re
import shlex
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import RecordingError
from agent.recording import Chunk, RecordingReader, read_recording
from agent.recording_csv import recover_command
from agent.recording_gzip import GzipCutOff, GzipReader
from agent.recording_recover import salvage
from agent.recording_writer import RecordingWriter
from tests.agent.helpers import DEFAULT_PROFILE, ROOT, error_line

runner = CliRunner()
DEMO = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"
ROWS = 16565  # lines 3-16567


def _damaged(tmp_path: Path, src: Path, offset: int, name: str, garbage: bytes) -> Path:
    data = bytearray(src.read_bytes())
    start = offset % len(data)
    data[start : start + len(garbage)] = garbage
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def _read_until_refused(path: Path) -> tuple[list[Chunk], str]:
    """The chunks the reader yields, and the message it then refuses the file with."""
    got: list[Chunk] = []
    with pytest.raises(RecordingError) as exc:
        for chunk in RecordingReader(path).chunks(256):
            got.append(chunk)
    return got, str(exc.value)


def _same_rows(chunk: Chunk, original: Chunk, n: int) -> None:
    assert len(chunk) == n
    np.testing.assert_array_equal(chunk.t, original.t[:n])
    np.testing.assert_array_equal(chunk.values, original.values[:n])
    assert chunk.labels == (original.labels or ())[:n]


# the bundled recording with 8 bytes of it overwritten ("XXXXXXXX"; 2 for the checksum): the
# rows zlib decodes are fixed by those bytes. The line named is the first one that differs from
# the original (checked when these cases were written, by decoding one byte at a time).
CSV_CASES = {
    "the-checksum-fails-at-the-end": (
        150_000,
        r" \(Error -3 .*incorrect data check\): line 8350 is the first bad row "
        r"\(expected 8 fields, got 1027\)",
        8347,
    ),
    "zlib-stops-mid-stream": (
        5000,
        r" \(Error -3 .*invalid distance too far back\): line 179 is the first bad row "
        r"\(expected 8 fields, got 10\)",
        176,
    ),
    "zlib-stops-inside-a-line": (
        1000,
        r" at or before line 4 \(Error -3 .*invalid distance too far back\)",
        1,  # line 3, whole and good; line 4 is cut where zlib stopped
    ),
    "the-checksum-itself": (
        -6,
        r" at or before line 16567 \(Error -3 .*incorrect data check\)",
        ROWS,
    ),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_reader_and_recover_agree_on_a_damaged_gzip_csv(tmp_path: Path, case: str) -> None:
    offset, where, kept = CSV_CASES[case]
    garbage = b"XX" if offset == -6 else b"XXXXXXXX"
    bad = _damaged(tmp_path, DEMO, offset, "bad.har.csv.gz", garbage)
    _, original = read_recording(DEMO)
    got, message = _read_until_refused(bad)
    damage = re.match(f"^{re.escape(str(bad))}: (the gzip stream is corrupt{where})", message)
    assert damage, message
    hint = "it" if "first bad" in where else "the damage"
    assert message.endswith(f"; to keep the whole rows before {hint}: {recover_command(str(bad))}")
    # what was yielded before the refusal is the original rows, nothing after the damage
    assert sum(len(c) for c in got) <= kept
    if got:
        t = np.concatenate([c.t for c in got])
        np.testing.assert_array_equal(t, original.t[: len(t)])
    # the command the message names keeps the rows before the damage, and says the same
    args = shlex.split(message.rsplit(": ", 1)[1])[1:]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "bad.recovered.har.csv.gz"
    assert res.output.startswith(f"{out}: {kept} samples recovered from {bad}; {damage[1]}; ")
    if hint == "it":
        assert "; it and everything after it were dropped (" in res.output
    else:  # the damage may be in any row decoded: it says so
        assert "kept every whole row decoded: each passed the checks, but the damage" in res.output
    _, chunk = read_recording(out)
    _same_rows(chunk, original, kept)


def test_every_command_names_the_same_first_bad_row(tmp_path: Path) -> None:
    """The review's case: ``replay`` said "corrupt after line 9395", ``recover`` "line 8350:
    expected 8 fields, got 1027" with no word of the damage, and kept nothing."""
    bad = _damaged(tmp_path, DEMO, 150_000, "corrupt.har.csv.gz", b"XXXXXXXX")
    damage = (
        f"{bad}: the gzip stream is corrupt (Error -3 while decompressing data: incorrect data "
        "check): line 8350 is the first bad row (expected 8 fields, got 1027)"
    )
    replay = ["replay", str(bad), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    replay += ["--device", f"gz-{os.getpid()}"]
    for args in (replay, ["recording", "info", str(bad)]):
        line = error_line(runner.invoke(app, args))
        assert line.startswith(f"har-agent: error: {damage}; to keep the whole rows before it"), (
            line
        )
    out = tmp_path / "x.har.csv"
    res = runner.invoke(app, ["recording", "recover", str(bad), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(
        f"{out}: 8347 samples recovered from {bad}; {damage[len(f'{bad}: ') :]}"
    )
    assert "; it and everything after it were dropped (" in res.output
    assert len(read_recording(out)[1]) == 8347


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("garbage", [b"XXXXXXXX", b"\xff"])
def test_reader_and_recover_agree_on_a_damaged_gzip_binary(
    tmp_path: Path, fraction: float, garbage: bytes
) -> None:
    """The bytes zlib writes are its own (they vary with its version), so the damage is placed
    by fraction and the reader's word is checked against what recover keeps. Values are not
    compared: a damaged float32 is often still a finite number, which no check can tell from a
    sample (a checksum that fails at the end cannot say where the damage is either)."""
    src = tmp_path / "x.har.bin.gz"
    with RecordingReader(DEMO) as reader, RecordingWriter(src, reader.header) as writer:
        for chunk in reader.chunks(4096):
            writer.write(chunk.t, chunk.values, chunk.labels)
    _, original = read_recording(src)
    offset = int(src.stat().st_size * fraction)
    bad = _damaged(tmp_path, src, offset, "bad.har.bin.gz", garbage)
    _, message = _read_until_refused(bad)
    first = re.search(r": record (\d+) is the first bad record \(", message)
    upto = re.search(r" at or before record (\d+) \(", message)
    assert message.startswith(f"{bad}: the gzip stream is corrupt") and (first or upto), message
    out = tmp_path / "out.har.bin"
    result = salvage(bad, out)
    assert result.damage is not None and result.damage in message
    if first:  # the records before the first bad one
        assert result.first_bad == int(first[1]) and result.rows == int(first[1]) - 1
    else:  # every whole record decoded was good
        assert upto is not None and result.first_bad is None
        assert int(upto[1]) - 1 <= result.rows <= int(upto[1])
    _, chunk = read_recording(out)
    assert len(chunk) == result.rows and len(original) == ROWS


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("value", "0,1\n0.02,\xff\n", "line 4: not UTF-8 text (byte 0xff)"),
        ("label", "0,1,A\n0.02,2,B\xff\n", "line 4: not UTF-8 text (byte 0xff)"),
        ("first-of-two", "0,1\n0.02,x\n0.04,\xfe\n", "line 4: not a number (a is 'x')"),
    ],
)
def test_bytes_that_are_not_utf8_are_named_by_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """Damage often leaves bytes that are not UTF-8: the row is named (it was "after line N:
    unreadable"), and a label of such bytes never reaches the writer (a traceback)."""
    head = '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g"}], '
    if name == "label":  # labelled, without a vocabulary: any label is taken, but not this one
        head += '"labelled": true, "start_time": "2012-01-01T00:00:00Z"}\nt,a,label\n'
    else:
        head += '"start_time": "2012-01-01T00:00:00Z"}\nt,a\n'
    path = tmp_path / "n.har.csv"
    path.write_bytes((head + text).encode("latin-1"))
    with pytest.raises(RecordingError, match=f"^{re.escape(f'{path}: {message}')}$"):
        read_recording(path)
    out = tmp_path / "o.har.csv.gz"
    line = error_line(runner.invoke(app, ["recording", "convert", str(path), str(out)]))
    assert line == f"har-agent: error: {path}: {message}"
    assert not out.exists()


ONE = gzip.compress(b"hello\n" * 1000)
TWO = gzip.compress(b"world\n" * 5)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (ONE, None),
        (ONE + TWO, None),  # two members
        (ONE + b"\0" * 10 + TWO + b"\0\0", None),  # zero padding after a member
        (ONE[:-3], GzipCutOff),  # the file ends inside the trailer
        (ONE[:20], GzipCutOff),
        (ONE + b"junk", zlib.error),  # not a gzip member after the first
        (b"\x1f\x8b" + b"\0" * 40, zlib.error),  # not gzip data at all
    ],
)
def test_the_gzip_reader_reads_what_gzip_reads(data: bytes, error: type | None) -> None:
    reader = GzipReader(io.BytesIO(data))
    got = reader.readall()
    if error is None:
        assert got == gzip.decompress(data) and reader.error is None
        return
    assert isinstance(reader.error, error)
    assert (b"hello\n" * 1000).startswith(got)  # what came before the problem, unchanged
    with pytest.raises((EOFError, OSError, zlib.error)):
        gzip.decompress(data)


def test_the_gzip_reader_keeps_what_zlib_decoded_before_the_damage() -> None:
    """:mod:`gzip` drops a whole read's worth of data when it fails; this reader keeps every
    byte zlib gave before the error, one read of any size or many."""
    text = b"".join(b"%d,%d\n" % (i, i * i) for i in range(100_000))
    data = bytearray(gzip.compress(text))
    data[len(data) // 2] ^= 0xFF
    pieces = []
    d = zlib.decompressobj(wbits=31)
    for i in range(len(data)):  # byte by byte: everything zlib gives before it refuses
        try:
            pieces.append(d.decompress(bytes(data[i : i + 1])))
        except zlib.error:
            break
    expected = b"".join(pieces)
    reader = GzipReader(io.BytesIO(bytes(data)))
    assert reader.readall() == expected and isinstance(reader.error, zlib.error)
    small = GzipReader(io.BytesIO(bytes(data)))
    assert b"".join(iter(lambda: small.read(7), b"")) == expected


def test_a_huge_expansion_is_decoded_a_piece_at_a_time() -> None:
    reader = GzipReader(io.BytesIO(gzip.compress(b"\0" * (64 << 20))))
    sizes = []
    while chunk := reader.read(1 << 30):
        sizes.append(len(chunk))
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 18
