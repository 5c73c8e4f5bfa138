"""Defects from a fuzz review of the recording reader, ``recording convert|recover|info`` and the
replay source: every bad input gives one ``har-agent: error:`` line naming the problem, exit 1,
and leaves every file as it was (no traceback, no hang, no silent wrong output)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.clock import SystemClock
from agent.errors import RecordingError
from agent.recording import RecordingReader, read_recording
from agent.recording_csv import MAX_LINE_CHARS, CsvBodyReader
from agent.recording_writer import RecordingWriter
from agent.sources import ReplaySource
from tests.agent.helpers import DEFAULT_PROFILE, ROOT, error_line, one_line_error

runner = CliRunner()
DEMO = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"


def _cli(*args: str) -> str:
    return error_line(runner.invoke(app, list(args)))


def _demo_lines(n: int = 300) -> list[str]:
    """The header, the column line and ``n - 2`` rows of the bundled recording."""
    with gzip.open(DEMO, "rt", encoding="utf-8") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def _binary(tmp_path: Path) -> Path:
    out = tmp_path / "x.har.bin"
    with RecordingReader(DEMO) as reader, RecordingWriter(out, reader.header) as writer:
        for chunk in reader.chunks(4096):
            writer.write(chunk.t, chunk.values, chunk.labels)
    return out


# -- 1: a destination that is not a regular file ---------------------------------------------
def _special(tmp_path: Path, kind: str) -> Path:
    node = tmp_path / f"my{kind}"
    if kind == "fifo":
        os.mkfifo(node)
    elif kind == "chardev":  # a node of our own (the null device's numbers), never /dev/null
        try:
            os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    else:
        node.mkdir()
    return node


def _kind_of(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "chardev", "dir"])
@pytest.mark.parametrize("command", ["convert", "recover"])
@pytest.mark.parametrize("force", [True, False])
def test_a_special_destination_is_never_replaced(
    tmp_path: Path, kind: str, command: str, force: bool
) -> None:
    src = _binary(tmp_path)
    node = _special(tmp_path, kind)
    before = _kind_of(node)
    args = ["recording", command, str(src)]
    args += [str(node)] if command == "convert" else ["--out", str(node)]
    line = _cli(*args, *(["--force"] if force else []))
    what = "is a folder" if kind == "dir" else "exists and is not a regular file"
    assert f"{node}: {what}" in line
    assert _kind_of(node) == before  # still the FIFO, the device, the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, node.name])
    if kind == "dir":
        assert list(node.iterdir()) == []


@pytest.mark.parametrize("kind", ["fifo", "chardev", "dir"])
def test_no_writer_replaces_a_special_file(tmp_path: Path, kind: str) -> None:
    """The writer itself refuses (``har-agent record -o NODE`` goes straight to it)."""
    node = _special(tmp_path, kind)
    before = _kind_of(node)
    with RecordingReader(DEMO) as reader:
        header = reader.header
    with pytest.raises(RecordingError, match="refusing to replace it with a recording"):
        RecordingWriter(node, header)
    assert _kind_of(node) == before and sorted(tmp_path.iterdir()) == [node]


def test_convert_leaves_an_existing_part_file_alone(tmp_path: Path) -> None:
    """``DST.part`` may be a session cut off while being recorded: its only copy."""
    dst = tmp_path / "s.har.csv"
    part = tmp_path / "s.har.csv.part"
    part.write_bytes(b"#har-recording/1 a cut-off session")
    for src in (DEMO, tmp_path / "missing.har.csv", part):  # a good source, a bad one, itself
        line = _cli("recording", "convert", str(src), str(dst), "--force")
        assert f"{part} exists" in line and "recover" in line
        assert part.read_bytes() == b"#har-recording/1 a cut-off session"
        assert not dst.exists()


# -- 2: a damaged gzip stream ----------------------------------------------------------------
def _flipped(tmp_path: Path, src: Path, offset: int, name: str) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("offset", "where"),
    [
        (1000, r" at or before line 4 \(.*invalid distance"),  # zlib stops inside line 4
        (150_000, r" \(.*\): line 8350 is the first bad row \(expected 8 fields, got 25\)"),
        (-6, r" at or before line 16567 \(.*incorrect data check\)"),  # the checksum: rows good
    ],
)
def test_a_corrupt_gzip_csv_is_named(tmp_path: Path, offset: int, where: str) -> None:
    bad = _flipped(tmp_path, DEMO, offset, "bad.har.csv.gz")
    match = f"^{re.escape(str(bad))}: the gzip stream is corrupt{where}"
    with pytest.raises(RecordingError, match=match):
        read_recording(bad)


@pytest.mark.parametrize("offset", [150_000, -6])
def test_a_corrupt_gzip_binary_is_named(tmp_path: Path, offset: int) -> None:
    plain = _binary(tmp_path)
    gz = tmp_path / "x.har.bin.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    bad = _flipped(tmp_path, gz, offset, "bad.har.bin.gz")
    match = f"^{re.escape(str(bad))}: the gzip stream is corrupt"
    match += r"( at or before record \d+ \(|.*: record \d+ is the first bad record \()"
    with pytest.raises(RecordingError, match=match):
        read_recording(bad)


def _profile(tmp_path: Path, recording: Path, loop: bool) -> Path:
    """The default profile replaying ``recording``, with its own device id and outbox."""
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "fuzz-{os.getpid()}-{tmp_path.name}"')
    text = text.replace(
        f'path = "{ROOT}/recordings/hapt-s02-e04.har.csv.gz"', f'path = "{recording}"'
    )
    text = text.replace("loop = true", f"loop = {'true' if loop else 'false'}")
    prof = tmp_path / "p.toml"
    prof.write_text(f'{text}\n[outbox]\npath = "{tmp_path}/outbox.db"\n')
    return prof


def test_a_corrupt_gzip_gives_one_line_from_every_command(tmp_path: Path) -> None:
    bad = _flipped(tmp_path, DEMO, 1000, "bad.har.csv.gz")
    fragment = f"{bad}: the gzip stream is corrupt"
    prof = _profile(tmp_path, bad, loop=False)
    one_line_error(runner.invoke(app, ["recording", "info", str(bad)]), fragment)
    out = tmp_path / "out.har.bin"
    one_line_error(runner.invoke(app, ["recording", "convert", str(bad), str(out)]), fragment)
    assert not out.exists() and not (tmp_path / "out.har.bin.part").exists()
    args = ["replay", str(bad), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    one_line_error(runner.invoke(app, args), fragment)
    one_line_error(runner.invoke(app, ["run", "--profile", str(prof)]), fragment)


# -- 3 and 5: header fields of the wrong type ------------------------------------------------
def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda head: head.__setitem__(key, value)


def _full_scale(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(head: dict[str, Any]) -> None:
        head["channels"][0]["full_scale"] = value

    return edit


HEADER_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "channels-a-string": (_set("channels", "acc"), "channels must be a list"),
    "channels-numbers": (_set("channels", [1, 2, 3, 4, 5, 6]), r"channels\[0\] must be an object"),
    "channels-null": (_set("channels", None), "channels must be a list .*not null"),
    "channel-name-a-number": (
        _set("channels", [{"name": 1, "unit": "g"}]),
        r"channels\[0\]\.name must be a non-empty string",
    ),
    "rate-401-digits": (
        _set("sample_rate_hz", int("9" * 401)),
        "sample_rate_hz must be a positive",
    ),
    "rate-a-string": (
        _set("sample_rate_hz", "50"),
        "sample_rate_hz must be a number, not a string",
    ),
    "rate-a-bool": (_set("sample_rate_hz", True), "sample_rate_hz must be a number, not a boolean"),
    "full-scale-a-bool": (_full_scale(True), "'acc_x': full_scale must be a number, not a boolean"),
    "full-scale-401-digits": (
        _full_scale(int("9" * 401)),
        "'acc_x': full_scale must be a positive",
    ),
    "labelled-a-string": (_set("labelled", "false"), "labelled must be true or false"),
    "labels-a-string": (_set("labels", "WALKING"), "labels must be a list of label names"),
    "labels-numbers": (_set("labels", [1, 2]), r"labels\[0\] must be a non-empty string"),
    "start-time-a-number": (_set("start_time", 2012), "start_time must be an ISO 8601 string"),
    "source-a-list": (_set("source", [1]), "source must be a JSON object"),
    "meta-nested-deep": (_set("meta", json.loads("[" * 40 + "]" * 40)), "nested more than 32"),
    "no-rate": (lambda head: head.pop("sample_rate_hz"), "sample_rate_hz is missing"),
}


def _edited(lines: list[str], edit: Callable[[dict[str, Any]], None]) -> str:
    tag, body = lines[0].split(" ", 1)
    head = json.loads(body)
    edit(head)
    return "\n".join([f"{tag} {json.dumps(head)}", *lines[1:]]) + "\n"


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_a_header_field_of_the_wrong_type_is_named(tmp_path: Path, case: str) -> None:
    edit, match = HEADER_CASES[case]
    csv = tmp_path / "bad.har.csv"
    csv.write_text(_edited(_demo_lines(), edit))
    good = _binary(tmp_path).read_bytes()
    end = good.index(b"\n")
    binary = tmp_path / "bad.har.bin"
    head = _edited([good[:end].decode()], edit).encode().rstrip(b"\n")
    binary.write_bytes(head + good[end:])
    for path in (csv, binary):
        with pytest.raises(RecordingError, match=f"^{re.escape(str(path))}: .*{match}"):
            RecordingReader(path)
        out = tmp_path / "out.har.csv"
        line = _cli("recording", "recover", str(path), "--out", str(out))
        assert str(path) in line and not out.exists()


def test_a_header_nested_100000_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.har.csv"
    path.write_text("#har-recording/1 " + "[" * 100_000 + "\n")
    with pytest.raises(RecordingError, match="malformed recording header .*nested"):
        RecordingReader(path)
    assert "malformed recording header" in _cli("recording", "info", str(path))


def test_a_header_line_over_a_mebibyte(tmp_path: Path) -> None:
    path = tmp_path / "long.har.csv"
    path.write_text("#har-recording/1 " + "x" * (MAX_LINE_CHARS + 10) + "\n")
    with pytest.raises(RecordingError, match="header line is longer than 1,048,576 bytes"):
        RecordingReader(path)


# -- 4: a very long line ---------------------------------------------------------------------
class _CountingText(io.StringIO):
    """A text stream that counts the characters its reader took."""

    taken = 0

    def read(self, size: int | None = -1) -> str:
        out = super().read(size)
        self.taken += len(out)
        return out

    def readline(self, size: int | None = -1) -> str:
        out = super().readline(size)
        self.taken += len(out)
        return out


@pytest.mark.parametrize("where", ["row", "column line"])
def test_a_long_line_is_refused_after_reading_at_most_the_cap(where: str) -> None:
    """Without a cap a 100 MB line took 81 s (the tail re-joined for every 64 KiB) and 560 MB:
    the reader now stops once a line passes MAX_LINE_CHARS, whatever the file holds after."""
    huge = "1" * (8 * MAX_LINE_CHARS)
    body = "t,a\n0,1\n0.02,2\n" + huge + "\n0.06,3\n" if where == "row" else huge + "\n"
    fh = _CountingText(body)
    with pytest.raises(RecordingError, match=r"f: line (5|2) is longer than 1,048,576"):
        reader = CsvBodyReader(fh, "f", ["a"], False, None)
        for _ in reader.blocks(2048):
            pass
    assert fh.taken <= MAX_LINE_CHARS + 2 * (1 << 16)  # not the 8 MiB: bounded by the cap
    assert MAX_LINE_CHARS == 1 << 20


def test_a_long_line_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "long.har.csv"
    lines = _demo_lines(10)
    path.write_text("\n".join(lines) + "\n" + "1," * MAX_LINE_CHARS + "\n")
    assert "line 11 is longer than 1,048,576 characters" in _cli("recording", "info", str(path))


def test_lines_up_to_the_cap_still_read(tmp_path: Path) -> None:
    """Rows split across the 64 KiB read blocks, CRLF ends split between two blocks."""
    lines = _demo_lines(3000)
    path = tmp_path / "crlf.har.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    _, chunk = read_recording(path)
    _, plain = read_recording(_write_text(tmp_path / "lf.har.csv", "\n".join(lines) + "\n"))
    assert chunk.labels == plain.labels and len(chunk) == 2998
    np.testing.assert_array_equal(chunk.values, plain.values)


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- 6: blank lines --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda ls: [*ls[:100], "", *ls[100:]], 101),  # in the middle
        (lambda ls: [*ls, ""], 301),  # at the end (the file ends in two line breaks)
        (lambda ls: [*ls[:50], "", *ls[50:60], "x", *ls[60:]], 51),  # before a bad line
    ],
)
def test_a_blank_line_is_refused_and_named(
    tmp_path: Path, edit: Callable[[list[str]], list[str]], line: int
) -> None:
    path = _write_text(tmp_path / "blank.har.csv", "\n".join(edit(_demo_lines())) + "\n")
    with pytest.raises(RecordingError, match=f"line {line}: blank line"):
        read_recording(path)


# -- 7: messages that name the problem -------------------------------------------------------
@pytest.mark.parametrize("value", ["1_000", "١", " "])
def test_a_number_python_takes_but_numpy_does_not_names_its_line(
    tmp_path: Path, value: str
) -> None:
    lines = _demo_lines()
    fields = lines[50].split(",")
    fields[2] = value
    lines[50] = ",".join(fields)
    path = _write_text(tmp_path / "n.har.csv", "\n".join(lines) + "\n")
    line = _cli("recording", "info", str(path))
    assert f"line 51: not a number (acc_y is {value!r})" in line


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_an_input_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    node = _special(tmp_path, kind)
    fragment = f"{node}: is not a regular file"
    with pytest.raises(RecordingError, match=re.escape(fragment)):
        RecordingReader(node)
    assert fragment in _cli("recording", "info", str(node))
    assert fragment in _cli("recording", "recover", str(node), "--out", str(tmp_path / "o.csv"))


def test_convert_into_a_folder_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for force in ([], ["--force"]):
        line = _cli("recording", "convert", str(DEMO), str(folder), *force)
        assert f"{folder}: is a folder" in line
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any(folder.iterdir())


def test_a_file_cut_after_its_header(tmp_path: Path) -> None:
    path = _write_text(tmp_path / "cut.har.csv", _demo_lines(1)[0] + "\n")
    line = _cli("recording", "info", str(path))
    assert "the column line (line 2, t,acc_x," in line and "is missing" in line


def test_a_label_longer_than_the_reader_holds_is_not_cut_short(tmp_path: Path) -> None:
    head = (
        '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g"}], '
        '"labelled": true, "start_time": "2012-01-01T00:00:00Z"}\nt,a,label\n'
    )
    path = _write_text(tmp_path / "l.har.csv", head + f"0,1,A\n0.02,1,{'B' * 70}\n")
    with pytest.raises(RecordingError, match="line 4: label 'BBBB.* is longer than 64"):
        read_recording(path)
    with RecordingReader(path) as reader:
        writer = RecordingWriter(tmp_path / "w.har.csv", reader.header)
    with pytest.raises(RecordingError, match="at most 64 characters"):
        writer.write([0.0], np.zeros((1, 1)), ["B" * 65])
    writer.abort()


# -- 8: looping over a recording with no samples ---------------------------------------------
def test_looping_over_no_samples_is_an_error(tmp_path: Path) -> None:
    path = _write_text(tmp_path / "empty.har.csv", "\n".join(_demo_lines(2)) + "\n")
    stop = threading.Event()
    once = ReplaySource(path, clock=SystemClock(), stop=stop, speed=0.0)
    assert list(once.chunks()) == []  # played once: nothing, and the replay ends
    with pytest.raises(RecordingError, match="holds no samples, so there is nothing to loop"):
        ReplaySource(path, clock=SystemClock(), stop=stop, speed=0.0, loop=True)
    prof = _profile(tmp_path, path, loop=True)
    result = runner.invoke(app, ["run", "--profile", str(prof)])
    one_line_error(result, f"{path}: holds no samples")
