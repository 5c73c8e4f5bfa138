"""The binary body (format version 2): same samples as CSV, streamed, and strict on bad input."""

from pathlib import Path

import numpy as np
import pytest

from agent.errors import RecordingError
from agent.recording import BINARY_VERSION, MAGIC, RecordingReader, read_recording
from agent.recording_bin import record_dtype
from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter, encoding_for

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recordings" / "hapt-s02-e04.har.csv.gz"

HEADER = RecordingHeader(
    sample_rate_hz=50.0,
    channels=(Channel("acc_x", "g", 16.0), Channel("gyro_x", "rad/s")),
    start_time="2012-01-01T00:00:00Z",
    source={"dataset": "unit-test"},
    labelled=True,
    labels=("WALKING", "SITTING"),
)


def _samples(n: int) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    rng = np.random.default_rng(3)
    t = 1000.0 + np.arange(n) / 50.0
    v = rng.normal(size=(n, 2)).astype(np.float32)
    labels: list[str | None] = [("WALKING", None, "SITTING")[(i // 37) % 3] for i in range(n)]
    return t, v, labels


def _write(path: Path, n: int = 500, header: RecordingHeader = HEADER) -> tuple:
    t, v, labels = _samples(n)
    with RecordingWriter(path, header) as w:
        w.write(t[:100], v[:100], labels[:100] if header.labelled else None)
        w.write(t[100:], v[100:], labels[100:] if header.labelled else None)
    return t, v, labels


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("a.har.bin", "binary"),
        ("a.har.bin.gz", "binary"),
        ("a.har.csv", "csv"),
        ("a.har.csv.gz", "csv"),
        ("a.bin.part", "csv"),
        ("OUT.BIN", "binary"),
        ("Walk.Har.Bin.GZ", "binary"),
    ],
)
def test_encoding_follows_the_name(name: str, encoding: str) -> None:
    assert encoding_for(name) == encoding


@pytest.mark.parametrize("name", ["s.har.bin", "s.har.bin.gz"])
def test_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    t, v, labels = _write(path)
    header, chunk = read_recording(path)
    assert header == HEADER
    np.testing.assert_array_equal(chunk.t, t)  # float64 time: bit-exact
    np.testing.assert_array_equal(chunk.values, v)  # float32 values: bit-exact
    assert chunk.values.dtype == np.float32 and chunk.values.flags.writeable
    assert chunk.labels == tuple(labels)
    reader = RecordingReader(path)
    assert reader.encoding == "binary"
    reader.close()


def test_file_layout_is_the_documented_one(tmp_path: Path) -> None:
    path = tmp_path / "s.har.bin"
    t, v, labels = _write(path, 10)
    data = path.read_bytes()
    head, _, body = data.partition(b"\n")
    assert head.startswith(f"{MAGIC}{BINARY_VERSION} ".encode())
    assert b'"encoding": "binary"' in head
    assert len(body) == 10 * (8 + 4 * 2 + 2)
    rec = np.frombuffer(body, dtype=record_dtype(2, True))
    np.testing.assert_array_equal(rec["t"], t)
    index = {None: 0, "WALKING": 1, "SITTING": 2}
    assert rec["label"].tolist() == [index[lbl] for lbl in labels]


def test_same_samples_as_the_csv_recording(tmp_path: Path) -> None:
    header, chunk = read_recording(DEMO)
    out = tmp_path / "demo.har.bin"
    with RecordingWriter(out, header) as w:
        w.write(chunk.t, chunk.values, chunk.labels)
    header2, chunk2 = read_recording(out)
    assert header2 == header
    np.testing.assert_array_equal(chunk2.t, chunk.t)
    np.testing.assert_array_equal(chunk2.values, chunk.values)
    assert chunk2.labels == chunk.labels
    assert out.stat().st_size < 0.5 * len(__import__("gzip").decompress(DEMO.read_bytes()))


def test_streamed_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "s.har.bin.gz"
    _write(path, 5000)
    sizes = [len(c) for c in RecordingReader(path).chunks(64)]
    assert sizes == [64] * 78 + [8]


@pytest.mark.parametrize("name", ["s.har.bin.gz", "s.har.csv"])
def test_reader_chunks_are_marked_finite(tmp_path: Path, name: str) -> None:
    """The reader refuses NaN and Inf (below), so it vouches for its chunks: the pipeline
    then skips its per-window check (``Chunk.finite``)."""
    path = tmp_path / name
    _write(path, 3000)
    chunks = list(RecordingReader(path).chunks(64))
    assert len(chunks) == 47 and all(c.finite for c in chunks)
    assert read_recording(path)[1].finite


def test_unlabelled(tmp_path: Path) -> None:
    header = RecordingHeader(100.0, (Channel("a", "g"),), "2020-05-01T12:00:00+00:00")
    path = tmp_path / "u.har.bin"
    with RecordingWriter(path, header) as w:
        w.write(np.arange(20) / 100.0, np.ones((20, 1)))
    h, chunk = read_recording(path)
    assert h.labelled is False and chunk.labels is None and len(chunk) == 20
    assert path.stat().st_size - len(path.read_bytes().partition(b"\n")[0]) - 1 == 20 * 12


def test_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "e.har.bin"
    with RecordingWriter(path, HEADER):
        pass
    _, chunk = read_recording(path)
    assert len(chunk) == 0


def test_writer_refuses_a_label_outside_the_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "s.har.bin"
    with pytest.raises(RecordingError, match="'RUNNING' is not in the header's labels"):
        with RecordingWriter(path, HEADER) as w:
            w.write([0.0], np.zeros((1, 2)), ["RUNNING"])
    assert not path.exists()


def test_writer_needs_a_vocabulary_for_labels(tmp_path: Path) -> None:
    header = RecordingHeader(50.0, (Channel("a", "g"),), "2020-05-01T12:00:00Z", labelled=True)
    with pytest.raises(RecordingError, match="needs its label vocabulary"):
        RecordingWriter(tmp_path / "s.har.bin", header)


def _corrupt(tmp_path: Path, mutate) -> Path:
    path = tmp_path / "s.har.bin"
    _write(path, 300)
    head, _, body = path.read_bytes().partition(b"\n")
    rec = np.frombuffer(body, dtype=record_dtype(2, True)).copy()
    result = mutate(head, rec)
    path.write_bytes(result if isinstance(result, bytes) else head + b"\n" + rec.tobytes())
    return path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda h, r: h + b"\n" + r.tobytes()[:-5], r"truncated: record 300 has 13 of 18 bytes"),
        (lambda h, r: r["v"].__setitem__((42, 1), np.nan), r"record 43: value is not finite"),
        (lambda h, r: r["t"].__setitem__(7, np.inf), r"record 8: time is not finite"),
        (lambda h, r: r["t"].__setitem__(200, 0.0), r"record 201: time 0.0 does not increase"),
        (lambda h, r: r["label"].__setitem__(99, 3), r"record 100: label index 3 is not in"),
        (
            lambda h, r: h.replace(b'"binary"', b'"zstd"') + b"\n" + r.tobytes(),
            r"unknown recording encoding 'zstd'",
        ),
        (
            lambda h, r: h.replace(b"/2 ", b"/3 ") + b"\n" + r.tobytes(),
            r"version '3' is not supported",
        ),
    ],
)
def test_reader_names_the_bad_record(tmp_path: Path, mutate, match: str) -> None:
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(RecordingError, match=match) as info:
        read_recording(path)
    assert str(path) in str(info.value)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "s.har.bin.gz"
    _write(path, 5000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="unreadable|truncated"):
        read_recording(path)


def test_agent_replays_binary_exactly_as_csv(tmp_path: Path) -> None:
    """The agent gives the same predictions, byte for byte but for the wall-clock fields, from the
    binary copy of a recording as from the CSV original."""
    import json

    from agent.publishers import MemoryPublisher
    from agent.wiring import RunOptions, build_agent
    from tests.agent.helpers import profile_for

    binary = tmp_path / "demo.har.bin.gz"
    header, chunk = read_recording(DEMO)
    with RecordingWriter(binary, header) as w:
        w.write(chunk.t, chunk.values, chunk.labels)

    def replay(path: Path) -> list[dict]:
        pub = MemoryPublisher()
        opts = RunOptions(recording=path, speed=0.0, loop=False)
        build_agent(profile_for(), options=opts, publisher=pub).run()
        out = []
        for topic, payload, _, _ in pub.messages:
            if topic.endswith("/prediction"):
                p = json.loads(payload)
                for key in ("ts", "boot", "latency_ms"):
                    p.pop(key)
                out.append(p)
        return out

    csv_preds, bin_preds = replay(DEMO), replay(binary)
    assert len(csv_preds) > 200
    assert bin_preds == csv_preds
