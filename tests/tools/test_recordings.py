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


def test_importer_writes_selected_experiments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert import_hapt.main(["--out", str(tmp_path), "--experiments", "21"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote 1 recording (9898 rows) to {tmp_path} ")
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


@pytest.mark.parametrize("text", ["99", "0", "-3", "4,62"])
def test_importer_rejects_an_experiment_number_hapt_has_not_at_parse_time(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 and -3 were refused only after the pickle's load, with exit status 1 (99 too), while
    ``4,abc`` was a usage error: the numbers run from 1 to 61."""
    with pytest.raises(SystemExit) as exc:
        import_hapt.main(["--out", str(tmp_path / "out"), "--experiments", text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --experiments: must be within [1, 61] (got " in err
    assert not (tmp_path / "out").exists()


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


def _no_load(*_a: object, **_k: object) -> object:
    raise AssertionError("the pickle was loaded before the output folder was checked")


@pytest.mark.parametrize("where", ["read-only", "file", "under a file"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_the_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    """A read-only --out was a RecordingError traceback after the pickle's load."""
    import os

    afile = tmp_path / "afile"
    afile.write_text("x")
    out = {"read-only": tmp_path / "ro", "file": afile, "under a file": afile / "sub"}[where]
    if where == "read-only":
        out.mkdir()
        real = os.access
        monkeypatch.setattr(  # tests run as root: chmod would not stop a write
            os, "access", lambda p, m, *a, **k: Path(p) != out and real(p, m, *a, **k)
        )
    monkeypatch.setattr(import_hapt, "load_hapt", _no_load)
    assert import_hapt.main(["--out", str(out), "--experiments", "4"]) == 1
    err = capsys.readouterr().err
    why = {"read-only": f"{out} is read-only", "file": "it is a file"}.get(
        where, f"{afile} is a file"
    )
    assert err == f"error: {out}: cannot create or write in the output folder ({why})\n"


def _break_writes_after(monkeypatch: pytest.MonkeyPatch, chunks: int, error: BaseException) -> None:
    """The recording writer raises ``error`` once it has written ``chunks`` chunks in all."""
    from agent.recording_writer import RecordingWriter

    real = RecordingWriter.write
    seen = [0]

    def write(self: RecordingWriter, *a: object, **k: object) -> None:
        seen[0] += 1
        if seen[0] > chunks:
            raise error
        real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordingWriter, "write", write)


def test_ctrl_c_during_the_import_is_one_line_and_leaves_only_whole_recordings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C was a KeyboardInterrupt traceback and left ``NAME.har.csv.gz.part`` behind."""
    out = tmp_path / "out"
    # experiment 21 (9,898 rows) is 5 chunks; 49 comes after it and is cut short
    _break_writes_after(monkeypatch, 7, KeyboardInterrupt())
    with pytest.raises(SystemExit) as exc:
        try:
            import_hapt.main(["--out", str(out), "--experiments", "21,49"])
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C went on as a KeyboardInterrupt (a traceback)")
    assert exc.value.code == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"interrupted: wrote 1 of the 2 recordings to {out} (each one whole; no half-written file "
        "is left)"
    )
    assert not any("Traceback" in line for line in err)
    assert [p.name for p in out.iterdir()] == ["hapt-s10-e21.har.csv.gz"]
    assert len(read_recording(out / "hapt-s10-e21.har.csv.gz")[1]) == 9898


def test_a_write_error_is_one_line_and_leaves_no_part_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.errors import RecordingError

    out = tmp_path / "out"
    _break_writes_after(monkeypatch, 2, RecordingError("disk full, say"))
    assert import_hapt.main(["--out", str(out), "--experiments", "21"]) == 1
    err = capsys.readouterr().err  # (after the progress bar)
    assert err.endswith("\nerror: disk full, say\n") and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_ctrl_c_while_the_pickle_loads_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_a: object, **_k: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(import_hapt, "load_hapt", interrupted)
    try:
        assert import_hapt.main(["--out", str(tmp_path / "out")]) == 130
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C went on as a KeyboardInterrupt (a traceback)")
    assert capsys.readouterr().err == "interrupted\n"
    assert not (tmp_path / "out").exists()
