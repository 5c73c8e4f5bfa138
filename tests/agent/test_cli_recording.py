"""``har-agent recording info|convert`` on the bundled recording; bad input -> one line, exit 1."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.recording import read_recording
from tests.agent.helpers import ROOT, error_line

runner = CliRunner()
DEMO = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"


def test_convert_round_trip_keeps_every_sample(tmp_path: Path) -> None:
    binary, back = tmp_path / "d.har.bin.gz", tmp_path / "d.har.csv"
    assert runner.invoke(app, ["recording", "convert", str(DEMO), str(binary)]).exit_code == 0
    result = runner.invoke(app, ["recording", "convert", str(binary), str(back)])
    assert result.exit_code == 0 and "16565 samples, csv" in result.output
    h0, c0 = read_recording(DEMO)
    for path in (binary, back):
        h, c = read_recording(path)
        assert h == h0 and c.labels == c0.labels
        np.testing.assert_array_equal(c.values, c0.values)
        np.testing.assert_allclose(c.t, c0.t, atol=1e-6)


def test_info_json_counts_samples_and_labels(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recording", "info", str(DEMO), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    _, chunk = read_recording(DEMO)
    assert info["samples"] == len(chunk) and info["encoding"] == "csv" and info["gaps"] == 0
    assert sum(info["labels"].values()) == len(chunk)
    assert info["labels"]["(none)"] == sum(lbl is None for lbl in chunk.labels or ())


def test_info_counts_gaps(tmp_path: Path) -> None:
    from agent.recording_writer import RecordingWriter

    header, chunk = read_recording(DEMO)
    path = tmp_path / "gappy.har.bin"
    t = chunk.t.copy()
    t[5000:] += 10.0
    t[9000:] += 3.0
    with RecordingWriter(path, header) as w:
        w.write(t, chunk.values, chunk.labels)
    result = runner.invoke(app, ["recording", "info", str(path), "--json"])
    assert json.loads(result.output)["gaps"] == 2


def test_convert_refuses_to_overwrite(tmp_path: Path) -> None:
    dst = tmp_path / "d.har.bin"
    dst.write_bytes(b"keep me")
    assert "exists" in error_line(runner.invoke(app, ["recording", "convert", str(DEMO), str(dst)]))
    assert dst.read_bytes() == b"keep me"


def test_convert_into_a_missing_folder_names_the_file(tmp_path: Path) -> None:
    dst = tmp_path / "no" / "such" / "x.har.bin"
    line = error_line(runner.invoke(app, ["recording", "convert", str(DEMO), str(dst)]))
    assert f"{dst}: cannot write the recording (No such file or directory)" in line


def test_convert_of_a_bad_recording_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bad.har.csv"
    src.write_text(
        '#har-recording/1 {"channels": [{"name": "a", "unit": "g"}], "sample_rate_hz": 50, '
        '"start_time": "2020-01-01T00:00:00Z"}\nt,a\n0.0,1\n0.02,x\n'
    )
    dst = tmp_path / "out.har.bin"
    line = error_line(runner.invoke(app, ["recording", "convert", str(src), str(dst)]))
    assert "line 4" in line
    assert list(tmp_path.iterdir()) == [src]


def test_info_of_a_missing_file() -> None:
    line = error_line(runner.invoke(app, ["recording", "info", "/nonexistent.har.bin"]))
    assert "no such recording file" in line


def test_info_shows_a_sensors_full_scale(tmp_path: Path) -> None:
    from agent.recording_header import Channel, RecordingHeader
    from agent.recording_writer import RecordingWriter

    header = RecordingHeader(
        50.0, (Channel("acc_x", "g", 4.0), Channel("gyro_x", "rad/s")), "2026-01-01T00:00:00Z"
    )
    path = tmp_path / "live.har.csv"
    with RecordingWriter(path, header) as w:
        w.write([0.0, 0.02], [[0.1, 0.2], [0.1, 0.3]])
    result = runner.invoke(app, ["recording", "info", str(path)])
    assert result.exit_code == 0, result.output
    assert "acc_x [g, full scale 4], gyro_x [rad/s]" in result.stdout


def test_info_of_an_unlabelled_recording_and_of_a_folder(tmp_path: Path) -> None:
    plain = tmp_path / "u.har.csv"
    from agent.recording_header import Channel, RecordingHeader
    from agent.recording_writer import RecordingWriter

    header = RecordingHeader(50.0, (Channel("acc_x", "g"),), "2026-12-03T00:00:00Z")
    with RecordingWriter(plain, header) as w:
        w.write(np.arange(10) / 50.0, np.zeros((10, 1)), None)
    result = runner.invoke(app, ["recording", "info", str(plain)])
    assert result.exit_code == 0, result.output
    assert [ln for ln in result.output.splitlines() if ln.startswith("labels")] == [
        "labels          (unlabelled)"
    ]
    folder = runner.invoke(app, ["recording", "info", str(tmp_path)])
    assert error_line(folder) == f"har-agent: error: {tmp_path}: is a folder, not a recording"


@pytest.mark.parametrize(
    ("name", "text", "encoding", "compression"),
    [
        ("d.har.csv", "csv", "csv", None),
        ("d.har.csv.gz", "csv, gzip", "csv", "gzip"),
        ("d.har.bin", "binary", "binary", None),
        ("d.har.bin.gz", "binary, gzip", "binary", "gzip"),
    ],
)
def test_info_and_convert_say_whether_a_recording_is_compressed(
    tmp_path: Path, name: str, text: str, encoding: str, compression: str | None
) -> None:
    """``encoding csv`` for a .csv.gz, ``binary`` for a .bin.gz hid the compression: the text
    says "csv, gzip", the JSON keeps ``encoding`` (the body) and adds ``compression``."""
    out = tmp_path / name
    converted = runner.invoke(app, ["recording", "convert", str(DEMO), str(out)])
    assert converted.exit_code == 0, converted.output
    assert converted.output.startswith(f"{out}: 16565 samples, {text}, ")
    info = runner.invoke(app, ["recording", "info", str(out)])
    assert info.exit_code == 0, info.output
    assert f"\nencoding        {text}\n" in info.output
    assert "compression" not in info.output  # said with the encoding, not on a line of its own
    summary = json.loads(runner.invoke(app, ["recording", "info", str(out), "--json"]).output)
    assert summary["encoding"] == encoding and summary["compression"] == compression
    keys = list(summary)
    assert keys[: keys.index("compression")] == ["path", "encoding"]  # the keys before stay


def test_info_reads_the_compression_from_the_content_not_the_name(tmp_path: Path) -> None:
    plain_named_gz = tmp_path / "p.har.csv.gz"
    plain_named_gz.write_bytes(gzip.decompress(DEMO.read_bytes()))
    summary = json.loads(
        runner.invoke(app, ["recording", "info", str(plain_named_gz), "--json"]).output
    )
    assert summary["encoding"] == "csv" and summary["compression"] is None
