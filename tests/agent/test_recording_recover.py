"""``har-agent recording recover``: what a killed ``record`` leaves (``*.part``) becomes a
recording again, every whole sample kept, whatever the encoding."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import RecordingError
from agent.recording import read_recording
from agent.recording_recover import salvage
from tests.agent.helpers import ROOT, error_line

runner = CliRunner()
ROWS, FLUSH_EVERY = 1234, 100

KILLED_WRITER = """
import os, signal, sys
import numpy as np
from agent.recording_writer import RecordingWriter
from agent.recording_header import Channel, RecordingHeader
header = RecordingHeader(
    50.0, (Channel("acc_x", "g"), Channel("acc_y", "g")), "2026-12-03T00:00:00Z",
    labelled=True, labels=("WALKING", "SITTING"),
)
rng = np.random.default_rng(7)
t = np.arange({rows}) / 50.0
v = rng.normal(size=({rows}, 2))
labels = ["WALKING" if i % 300 < 150 else "SITTING" for i in range({rows})]
w = RecordingWriter(sys.argv[1], header, flush_every={flush})
for a in range(0, {rows}, 10):
    w.write(t[a:a + 10], v[a:a + 10], labels[a:a + 10])
os.kill(os.getpid(), signal.SIGKILL)  # a power cut before close(): only the .part is left
"""


def _killed_record(path: Path) -> Path:
    code = KILLED_WRITER.format(rows=ROWS, flush=FLUSH_EVERY)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=False)
    assert proc.returncode == -9
    part = path.with_name(path.name + ".part")
    assert part.is_file() and not path.exists()
    return part


@pytest.mark.parametrize("name", ["k.har.csv.gz", "k.har.csv", "k.har.bin", "k.har.bin.gz"])
def test_a_killed_recording_is_recovered_to_its_last_flush(tmp_path: Path, name: str) -> None:
    part = _killed_record(tmp_path / name)
    if name.endswith(".gz"):  # the reader refuses the cut stream, and says what to do
        with pytest.raises(RecordingError, match="gzip stream is cut off.*recording recover"):
            read_recording(part)
    out = tmp_path / name
    result = salvage(part, out)
    flushed = ROWS // FLUSH_EVERY * FLUSH_EVERY  # rows reach the disk at every flush
    assert result.rows == flushed
    assert result.gzip_complete is not name.endswith(".gz")
    header, chunk = read_recording(out)
    rng = np.random.default_rng(7)
    t = np.arange(ROWS) / 50.0
    v = rng.normal(size=(ROWS, 2)).astype(np.float32)
    np.testing.assert_allclose(chunk.t, t[:flushed], atol=1e-6)
    if ".bin" in name:
        np.testing.assert_array_equal(chunk.values, v[:flushed])
    else:  # CSV keeps the values as text, to the digits the writer prints
        np.testing.assert_allclose(chunk.values, v[:flushed], rtol=1e-5, atol=1e-6)
    expected = ["WALKING" if i % 300 < 150 else "SITTING" for i in range(flushed)]
    assert list(chunk.labels or ()) == expected
    assert header.labels == ("WALKING", "SITTING")


def test_recover_command(tmp_path: Path) -> None:
    part = _killed_record(tmp_path / "k.har.csv.gz")
    result = runner.invoke(app, ["recording", "recover", str(part)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "k.har.csv.gz"
    assert f"{out}: 1200 samples recovered from {part}" in result.output
    assert "bytes of a partial last sample; the gzip stream was cut off" in result.output
    assert len(read_recording(out)[1]) == 1200
    again = runner.invoke(app, ["recording", "recover", str(part)])
    assert error_line(again) == f"har-agent: error: {out} exists (use --force to overwrite)"
    other = tmp_path / "x.har.csv"
    other.write_text("not a recording")
    bad = runner.invoke(app, ["recording", "recover", str(other), "--out", str(tmp_path / "y.csv")])
    assert "not a har-agent recording" in error_line(bad)
    assert not (tmp_path / "y.csv").exists() and not (tmp_path / "y.csv.part").exists()
    named = runner.invoke(app, ["recording", "recover", str(other)])
    assert "not a .part file; name the output with --out" in error_line(named)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("t,acc_x\n0,1\n0.02,2\n0.01,3\n0.06,4\n", "line 5: time 0.01 does not increase"),
        ("", "the column line (line 2, t,acc_x) is missing"),  # cut before the column line
        ("t,acc_x\n", "no whole sample to recover"),
    ],
)
def test_a_failed_recovery_leaves_the_part_file_as_it_was(
    tmp_path: Path, body: str, message: str
) -> None:
    head = '#har-recording/1 {"sample_rate_hz": 50.0, "channels": [{"name": "acc_x", '
    head += '"unit": "g"}], "start_time": "2026-12-03T00:00:00Z"}\n'
    part = tmp_path / "a.har.csv.part"
    part.write_text(head + body)
    before = part.read_bytes()
    result = runner.invoke(app, ["recording", "recover", str(part)])
    line = error_line(result)
    assert message in line and str(part) in line and "salvaged" not in line
    assert part.read_bytes() == before  # the user's only copy is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.har.csv.part"]  # nothing else left
