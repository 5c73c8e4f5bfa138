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
