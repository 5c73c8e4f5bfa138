"""The recordings shipped in recordings/ and the importer that writes them."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from agent.recording import read_recording
from tools import hapt, import_hapt
from tools.data import experiment_from_recording

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "recordings").glob("hapt-*.har.csv.gz"))


def test_two_recordings_are_shipped() -> None:
    assert len(SHIPPED) == 2
    for path in SHIPPED:
        assert path.stat().st_size < 420_000


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recording_reads_back(path: Path) -> None:
    header, chunk = read_recording(path)
    assert header.sample_rate_hz == 50.0
    assert header.channel_names == hapt.CHANNELS
    assert tuple(c.unit for c in header.channels) == hapt.UNITS
    assert header.labelled and chunk.labels is not None
    src = header.source
    assert src["dataset"] == "UCI HAPT" and src["license"] == "CC BY 4.0"
    assert src["split"] == "test" and src["subject"] in hapt.TEST_SUBJECTS
    assert path.name == f"hapt-s{src['subject']:02d}-e{src['experiment']:02d}.har.csv.gz"
    assert header.start_time == import_hapt.EPOCH
    assert "start_time_note" in header.meta
    assert len(chunk) > 10_000
    np.testing.assert_allclose(np.diff(chunk.t), 1 / 50, atol=1e-6)
    assert set(chunk.labels) - {None} <= set(hapt.LABEL_NAMES.values())
    assert set(hapt.ACTIVITIES) <= set(chunk.labels)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recording_matches_the_dataset(
    path: Path, experiments: list[hapt.Experiment]
) -> None:
    back = experiment_from_recording(path)
    original = next(e for e in experiments if e.experiment == back.experiment)
    assert original.subject == back.subject
    np.testing.assert_array_equal(back.labels, original.labels)
    np.testing.assert_allclose(back.values, original.values, rtol=1e-6, atol=1e-7)


def test_importer_writes_selected_experiments(tmp_path: Path) -> None:
    assert import_hapt.main(["--out", str(tmp_path), "--experiments", "21"]) == 0
    (path,) = tmp_path.iterdir()
    assert path.name == "hapt-s10-e21.har.csv.gz"
    header, chunk = read_recording(path)
    assert header.source == {
        "dataset": "UCI HAPT",
        "license": "CC BY 4.0",
        "subject": 10,
        "experiment": 21,
        "split": "test",
    }
    assert len(chunk) == 9898


def test_importer_rejects_unknown_experiment(tmp_path: Path) -> None:
    assert import_hapt.main(["--out", str(tmp_path), "--experiments", "99"]) == 1


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_importer_refuses_an_empty_selection(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--experiments ""`` used to import nothing and say "wrote 0 recordings" with status 0."""
    with pytest.raises(SystemExit) as exc:
        import_hapt.main(["--out", str(tmp_path / "out"), "--experiments", text])
    assert exc.value.code == 2
    assert "names no experiment" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


_LONG = _gz(pickle.dumps(list(range(5000)), protocol=2))
_STRUCTURE = _gz(pickle.dumps({1: [{"a": 1}]}, protocol=2))
_BAD_PICKLES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "no such file"),
    "empty": (b"", "truncated or corrupt"),
    "not gzip": (b"garbage, not gzip at all", "not a gzip file"),
    "truncated gzip": (_LONG[: len(_LONG) // 2], "truncated or corrupt"),
    "truncated pickle": (_gz(b"\x80\x02]q\x00(K\x01K\x02"), "truncated or corrupt"),
    "garbage pickle": (_gz(b"\xff\xfe garbage"), "not a pickle this reader accepts"),
    "refused global": (_gz(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R."), "os.system"),
    "wrong top level": (_gz(pickle.dumps([1, 2], protocol=2)), "not a dict"),
    "wrong frames": (_STRUCTURE, "expected a pandas DataFrame"),
    "no experiments": (_gz(pickle.dumps({}, protocol=2)), "found 0 experiments"),
    "mixed keys": (_gz(pickle.dumps({1: [], "a": []}, protocol=2)), "structure"),
}


@pytest.mark.parametrize("case", sorted(_BAD_PICKLES))
def test_a_bad_pickle_is_one_line_naming_it(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of these was a traceback (FileNotFoundError, BadGzipFile, EOFError,
    UnpicklingError, HaptFormatError, TypeError) from an unwrapped load_hapt."""
    data, problem = _BAD_PICKLES[case]
    src = tmp_path / "HAPT.pkl.gz"
    if data is not None:
        src.write_bytes(data)
    assert import_hapt.main(["--pickle", str(src), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {src}: "), err
    assert problem in err
    with pytest.raises(hapt.HaptFileError, match=problem):
        hapt.load_hapt(src)
