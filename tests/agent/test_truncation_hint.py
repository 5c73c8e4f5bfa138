"""A recording cut off while being written says how to keep its whole samples, and the command
it names does: run here exactly as the message words it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import RecordingError
from agent.recording import RecordingReader
from agent.recording_csv import recover_command
from tests.agent.helpers import RECORDINGS

runner = CliRunner()


def _samples(path: Path) -> int:
    with RecordingReader(path) as reader:
        return sum(len(c.t) for c in reader.chunks(4096))


def _converted(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    res = runner.invoke(app, ["recording", "convert", str(RECORDINGS[0]), str(out)])
    assert res.exit_code == 0, res.output
    return out


def _hinted_command(path: Path) -> list[str]:
    with pytest.raises(RecordingError) as exc:
        _samples(path)
    message = str(exc.value)
    found = re.search(
        r"to keep its whole (?:rows|records): (har-agent recording recover .+)$", message
    )
    assert found, message
    return shlex.split(found.group(1))[1:]


@pytest.mark.parametrize("name", ["s.har.bin", "s.har.bin.part"])
def test_a_truncated_binary_recording_names_the_command_that_recovers_it(
    tmp_path: Path, name: str
) -> None:
    whole = _converted(tmp_path, "whole.har.bin")
    cut = tmp_path / name
    cut.write_bytes(whole.read_bytes()[:-5])  # the last record loses 5 bytes
    args = _hinted_command(cut)
    with pytest.raises(RecordingError, match=r"truncated: record \d+ has \d+ of \d+ bytes \(the"):
        _samples(cut)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / ("s.har.bin" if name.endswith(".part") else "s.recovered.har.bin")
    assert _samples(out) == _samples(whole) - 1


def test_a_cut_off_gzip_recording_not_named_part_gets_a_command_that_works(
    tmp_path: Path,
) -> None:
    """The gzip hint said ``recording recover FILE``, which refuses a name without ``.part``."""
    cut = tmp_path / "s.har.csv.gz"
    cut.write_bytes(RECORDINGS[0].read_bytes()[:30_000])
    res = runner.invoke(app, _hinted_command(cut))
    assert res.exit_code == 0, res.output
    assert _samples(tmp_path / "s.recovered.har.csv.gz") > 0


@pytest.mark.parametrize(
    ("where", "command"),
    [
        ("/d/x.har.bin.part", "har-agent recording recover /d/x.har.bin.part"),
        ("/d/x.har.bin", "har-agent recording recover /d/x.har.bin --out /d/x.recovered.har.bin"),
        ("x.har.csv.gz", "har-agent recording recover x.har.csv.gz --out x.recovered.har.csv.gz"),
        ("/d/odd", "har-agent recording recover /d/odd --out /d/odd.recovered.har.csv"),
    ],
)
def test_recover_command(where: str, command: str) -> None:
    assert recover_command(where) == command


# -- a plain CSV recording that ends inside its last row ---------------------------------------
HEAD = (
    '#har-recording/1 {"sample_rate_hz": 50, "channels": [{"name": "a", "unit": "g"}], '
    '"labelled": true, "labels": ["LAYING", "WALKING"], "start_time": "2012-01-01T00:00:00Z"}\n'
    "t,a,label\n"
)
UNLABELLED = HEAD.replace('"labelled": true, "labels": ["LAYING", "WALKING"], ', "").replace(
    "t,a,label", "t,a"
)
ROW = [f"{i / 50:.6f},{i}.5,WALKING\n" for i in range(20)]
ROWS = "".join(ROW)  # lines 3-22
PLAIN_ROWS = "".join(f"{i / 50:.6f},{i}.5\n" for i in range(20))
HINT = ": the last line is cut off (the recording was not finished); to keep its whole rows: "


@pytest.mark.parametrize(
    ("text", "gz", "message", "hinted"),
    [
        # the last line without its line break, refused: cut off, and how to recover
        (HEAD + ROWS + "0.400000,2", False, "line 23: expected 3 fields, got 2", True),
        (HEAD + ROWS + "0.400000,2.5,WALK", False, "line 23: label 'WALK' is not one", True),
        (UNLABELLED + PLAIN_ROWS + "0.400000,1e", False, "line 23: not a number (a is '1e')", True),
        (HEAD + ROWS + "0.4", False, "line 23: expected 3 fields, got 1", True),
        # a whole gzip stream of a CSV text cut short (compressed after the cut): the same
        (HEAD + ROWS + "0.400000,2", True, "line 23: expected 3 fields, got 2", True),
        # the bad last line ends with its line break: the file was finished, the row is bad
        (HEAD + ROWS + "0.400000,2\n", False, "line 23: expected 3 fields, got 2", False),
        # a bad row in the middle; the last line, without a line break, is fine
        (
            HEAD + ROW[0] + "0.020000,2\n" + "".join(ROW[2:]) + "0.4,1,",
            False,
            "line 4: expected 3 fields, got 2",
            False,
        ),
        (HEAD + ROWS + "0.400000,2\n0.420000,3,WALKING", False, "line 23: expected 3", False),
        # a last line without a line break that is a good row: read as one
        (HEAD + ROWS + "0.400000,2.5,WALKING", False, None, False),
    ],
)
def test_a_csv_recording_cut_inside_its_last_row_says_how_to_recover(
    tmp_path: Path, text: str, gz: bool, message: str | None, hinted: bool
) -> None:
    import gzip

    path = tmp_path / ("s.har.csv.gz" if gz else "s.har.csv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    if message is None:
        assert _samples(path) == 21
        return
    with pytest.raises(RecordingError) as exc:
        _samples(path)
    said = str(exc.value)
    assert said.startswith(f"{path}: {message}")
    if not hinted:
        assert "cut off" not in said and "recover" not in said
        return
    recovered = tmp_path / f"s.recovered.har.csv{'.gz' if gz else ''}"
    assert said.endswith(f"{HINT}{recover_command(str(path))}")
    res = runner.invoke(app, _hinted_command(path))
    assert res.exit_code == 0, res.output
    assert _samples(recovered) == 20  # every whole row


def test_the_cut_demo_recording_gets_the_hint_from_replay_and_info(tmp_path: Path) -> None:
    """The review's case: the bundled recording, uncompressed, cut at 50,000 bytes."""
    import gzip
    import os

    from tests.agent.helpers import DEFAULT_PROFILE, error_line

    cut = tmp_path / "cut.har.csv"
    cut.write_bytes(gzip.decompress(RECORDINGS[0].read_bytes())[:50_000])
    line = f"{cut}: line 660: expected 8 fields, got 6{HINT}{recover_command(str(cut))}"
    info = runner.invoke(app, ["recording", "info", str(cut)])
    assert error_line(info) == f"har-agent: error: {line}"
    replay = runner.invoke(
        app,
        ["replay", str(cut), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
        + ["--device", f"cut-{os.getpid()}"],
    )
    assert error_line(replay) == f"har-agent: error: {line}"
    res = runner.invoke(app, _hinted_command(cut))
    assert res.exit_code == 0, res.output
    assert _samples(tmp_path / "cut.recovered.har.csv") == 657  # lines 3-659
