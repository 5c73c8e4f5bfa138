import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest

from agent.errors import RecordingError
from agent.recording import RecordingReader, read_recording
from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter

HEADER = RecordingHeader(
    sample_rate_hz=50.0,
    channels=(Channel("acc_x", "g"), Channel("gyro_x", "rad/s")),
    start_time="2012-01-01T00:00:00Z",
    source={"dataset": "unit-test"},
    labelled=True,
    labels=("WALKING", "SITTING"),
    meta={"note": "x"},
)


def _write(
    path: Path, n: int = 300, header: RecordingHeader = HEADER
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    rng = np.random.default_rng(1)
    t = np.arange(n) / header.sample_rate_hz
    v = rng.normal(size=(n, len(header.channels)))
    labels: list[str | None] = [("WALKING" if i < n // 2 else None) for i in range(n)]
    with RecordingWriter(path, header) as w:
        w.write(t[: n // 3], v[: n // 3], labels[: n // 3] if header.labelled else None)
        w.write(t[n // 3 :], v[n // 3 :], labels[n // 3 :] if header.labelled else None)
    return t, v, labels


@pytest.mark.parametrize("name", ["s.har.csv", "s.har.csv.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    t, v, labels = _write(path)
    header, chunk = read_recording(path)
    assert header == HEADER
    np.testing.assert_allclose(chunk.t, t, atol=1e-6)
    np.testing.assert_allclose(chunk.values, v, rtol=1e-6, atol=1e-6)
    assert chunk.labels == tuple(labels)
    assert not (tmp_path / (name + ".part")).exists()


def test_unlabelled_round_trip(tmp_path: Path) -> None:
    header = RecordingHeader(100.0, (Channel("a", "g"),), "2020-05-01T12:00:00+00:00")
    _write(tmp_path / "u.har.csv", 50, header)
    h, chunk = read_recording(tmp_path / "u.har.csv")
    assert h.labelled is False and chunk.labels is None and len(chunk) == 50


def test_streaming_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "s.har.csv.gz"
    _write(path, 1000)
    sizes = [len(c) for c in RecordingReader(path).chunks(64)]
    assert sizes == [64] * 15 + [40]


def test_is_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "s.har.csv"
    _write(path, 5000)
    with open(path, "a") as fh:
        fh.write("garbage,row\n")  # a bad row at the very end
    chunks = RecordingReader(path).chunks(10)
    assert len(next(chunks)) == 10  # the first chunk comes before the end is read
    with pytest.raises(RecordingError, match="line 5003"):
        list(chunks)


def test_failed_write_leaves_no_target(tmp_path: Path) -> None:
    path = tmp_path / "s.har.csv"
    with pytest.raises(RuntimeError), RecordingWriter(path, HEADER) as w:
        w.write([0.0], np.zeros((1, 2)), ["WALKING"])
        raise RuntimeError("crash")
    assert not path.exists()
    assert (tmp_path / "s.har.csv.part").exists()


@pytest.mark.parametrize(
    ("t", "values", "labels", "match"),
    [
        ([0.0, 0.0], np.zeros((2, 2)), ["A", "A"], "strictly increasing"),
        ([0.0], np.zeros((1, 3)), ["A"], "shaped"),
        ([0.0], np.zeros((1, 2)), None, "one label per sample"),
    ],
)
def test_writer_rejects_bad_samples(tmp_path: Path, t, values, labels, match: str) -> None:
    w = RecordingWriter(tmp_path / "x.har.csv", HEADER)
    with pytest.raises(RecordingError, match=match):
        w.write(t, values, labels)
    w.abort()


def _corrupt(tmp_path: Path, text: str, name: str = "bad.har.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD_HEAD = (
    '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g"}], '
    '"start_time": "2012-01-01T00:00:00Z"}\nt,a\n'
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not a har-agent recording"),
        ("t,a\n0,1\n", "not a har-agent recording"),
        ("#har-recording/9 {}\n", "version '9' is not supported"),
        ("#har-recording/1 {not json\n", "malformed recording header"),
        (
            '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g", '
            '"full_scale": -2}], "start_time": "2012-01-01T00:00:00Z"}\nt,a\n',
            "full_scale must be a positive number",
        ),
        (
            '#har-recording/1 {"sample_rate_hz": -5, "channels": [{"name": "a", "unit": "g"}], '
            '"start_time": "2012-01-01T00:00:00Z"}\nt,a\n',
            "positive",
        ),
        (
            '#har-recording/1 {"sample_rate_hz": 1e9, "channels": [{"name": "a", "unit": "g"}], '
            '"start_time": "2012-01-01T00:00:00Z"}\nt,a\n',
            "up to",
        ),
        (
            '#har-recording/1 {"sample_rate_hz": 50, "channels": [], '
            '"start_time": "2012-01-01T00:00:00Z"}\nt\n',
            "no channels",
        ),
        (
            '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g"}], '
            '"start_time": "yesterday"}\nt,a\n',
            "ISO 8601",
        ),
        (GOOD_HEAD.replace("t,a", "t,b"), "does not match header"),
    ],
)
def test_reader_rejects_bad_headers(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(RecordingError, match=match):
        RecordingReader(_corrupt(tmp_path, text))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("0,1\n0.02,x\n", "line 4: not a number"),
        ("0,1\n0.02,1,2\n", "line 4: expected 2 fields"),
        ("0,1\n0,2\n", "line 4: time 0.0 does not increase"),
        ("0,1\n0.02,nan\n", "line 4: value is not finite"),
        ("0,inf\n", "line 3: value is not finite"),
        ("0,1\n0.02,1e39\n", r"line 4: value is not finite \(NaN, Inf, or beyond float32's"),
    ],
)
def test_reader_rejects_bad_rows(tmp_path: Path, rows: str, match: str) -> None:
    path = _corrupt(tmp_path, GOOD_HEAD + rows)
    with pytest.raises(RecordingError, match=match):
        read_recording(path)


LABELLED_HEAD = GOOD_HEAD.replace('"start_time"', '"labelled": true, "start_time"').replace(
    "t,a\n", "t,a,label\n"
)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("0,1,A\n0.02,1,B,C\n0.04,1\n", "line 4: expected 3 fields"),
        ("0,1,A\n0.02,1\n", "line 4: expected 3 fields"),
        ("0,1,A\n0.02,nan?,B\n", "line 4: not a number"),
    ],
)
def test_labelled_rows_are_checked(tmp_path: Path, rows: str, match: str) -> None:
    path = _corrupt(tmp_path, LABELLED_HEAD + rows)
    with pytest.raises(RecordingError, match=match):
        read_recording(path)


def test_labelled_parse(tmp_path: Path) -> None:
    _, chunk = read_recording(_corrupt(tmp_path, LABELLED_HEAD + "0,1,A\n0.02,2,\n0.04,3,B\n"))
    assert chunk.labels == ("A", None, "B")
    assert chunk.values[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such recording"):
        RecordingReader(tmp_path / "nope.har.csv")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "s.har.csv.gz"
    _write(path, 2000)
    data = path.read_bytes()
    cut = tmp_path / "cut.har.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="the gzip stream is cut off .*recording recover"):
        read_recording(cut)


@pytest.mark.parametrize(
    ("name", "compress"), [("plain-named.har.csv.gz", False), ("gz-named.har.csv", True)]
)
def test_compression_is_read_from_the_content_not_the_name(
    tmp_path: Path, name: str, compress: bool
) -> None:
    src = tmp_path / ("src.har.csv.gz" if compress else "src.har.csv")
    t, _, _ = _write(src)
    path = tmp_path / name
    path.write_bytes(src.read_bytes())
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    _, chunk = read_recording(path)
    np.testing.assert_allclose(chunk.t, t, atol=1e-6)


@pytest.mark.parametrize("body", ["zeros", "flipped"])
def test_corrupt_gzip_is_named(tmp_path: Path, body: str) -> None:
    path = tmp_path / "s.har.csv.gz"
    if body == "zeros":  # a gzip magic, then nothing gzip can read
        path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    else:  # a real recording's gzip stream with its deflate data damaged
        _write(tmp_path / "ok.har.csv.gz")
        data = bytearray((tmp_path / "ok.har.csv.gz").read_bytes())
        for i in range(20, 60):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises((OSError, zlib.error, EOFError)):  # really damaged
            gzip.decompress(bytes(data))
    with pytest.raises(RecordingError, match="s.har.csv.gz: the gzip stream is corrupt"):
        RecordingReader(path)
