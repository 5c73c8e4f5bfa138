"""Windows and subject-wise splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.windowing import WindowSpec
from tools import data, hapt


def _exp(subject: int, number: int, labels: list[int]) -> hapt.Experiment:
    n = len(labels)
    values = np.arange(n * 6, dtype=np.float32).reshape(n, 6)
    return hapt.Experiment(subject, number, values, np.array(labels, dtype=np.int64))


def test_only_uniform_activity_windows_are_kept() -> None:
    spec = WindowSpec(length=4, hop=2, rate_hz=50.0)
    #          window starts: 0    2    4     6     8
    labels = [1, 1, 1, 1, 1, 1, 2, 2, 7, 7, 7, 7, -1, -1]
    ws = data.cut_windows([_exp(3, 5, labels)], spec)
    # [0:4] WALKING, [2:6] WALKING, [4:8] mixed, [6:10] mixed, [8:12] transition (not a class),
    # [10:14] unlabelled tail
    assert ws.y.tolist() == [0, 0]
    assert ws.x.shape == (2, 4, 6) and ws.x.dtype == np.float32
    np.testing.assert_array_equal(ws.x[1], np.arange(14 * 6, dtype=np.float32).reshape(14, 6)[2:6])
    assert ws.subject.tolist() == [3, 3] and ws.experiment.tolist() == [5, 5]


def test_short_experiment_gives_no_windows() -> None:
    ws = data.cut_windows([_exp(1, 1, [1, 1, 1])], WindowSpec(4, 2, 50.0))
    assert len(ws) == 0 and ws.x.shape == (0, 4, 6)


def test_split_keeps_test_subjects_out() -> None:
    split = data.make_split(range(1, 31))
    assert set(split.test) == set(hapt.TEST_SUBJECTS)
    assert set(split.val) == set(data.DEFAULT_VAL_SUBJECTS)
    assert not set(split.train) & set(hapt.TEST_SUBJECTS)
    assert not set(split.val) & set(hapt.TEST_SUBJECTS)
    assert not set(split.train) & set(split.val)
    assert set(split.train) | set(split.val) | set(split.test) == set(range(1, 31))


def test_validation_on_test_subjects_is_refused() -> None:
    with pytest.raises(ValueError, match="test subjects"):
        data.make_split(range(1, 31), val_subjects=(1, 2))


@pytest.fixture(scope="module")
def windows(experiments: list[hapt.Experiment]) -> data.WindowSet:
    return data.cut_windows(experiments)


def test_protocol_window_counts(windows: data.WindowSet) -> None:
    split = data.make_split(set(windows.subject.tolist()))
    train = windows.of_subjects(split.train)
    val = windows.of_subjects(split.val)
    test = windows.of_subjects(split.test)
    assert len(train) + len(val) + len(test) == len(windows)
    # the paper protocol: about 7,100 train and 2,900 test windows
    assert 6_900 <= len(train) + len(val) <= 7_300
    assert 2_750 <= len(test) <= 3_050
    assert 1_000 <= len(val) <= 2_000
    assert not set(train.subject.tolist()) & set(hapt.TEST_SUBJECTS)
    assert not set(val.subject.tolist()) & set(hapt.TEST_SUBJECTS)
    assert set(test.subject.tolist()) == set(hapt.TEST_SUBJECTS)
    for part in (train, val, test):
        assert min(part.class_counts().values()) > 100
    assert windows.x.shape[1:] == (128, 6)


def test_a_missing_or_partial_import_is_an_error_not_the_pickle(tmp_path: Path) -> None:
    """An explicit --data folder that is not the full import used to fall back to the pickle
    silently; the two sources differ in the 8th digit, so the models would too."""
    with pytest.raises(data.DataSourceError, match="does not exist; run python -m tools.import"):
        data.load_experiments(tmp_path / "none")
    (tmp_path / "part").mkdir()
    with pytest.raises(data.DataSourceError, match="holds 0 of the 61"):
        data.load_experiments(tmp_path / "part")
    assert data.data_source("pickle") == "pickle" and data.data_source("auto") == "auto"
    assert data.data_source("x/y") == Path("x/y") and data.data_text(None) == "pickle"


def test_tools_commands_end_bad_input_in_one_line(tmp_path: Path) -> None:
    """The tools' commands: an unusable dataset or bank is `error: ...` and exit status 1;
    a bad option value is refused by argparse before any work (exit status 2)."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120
        )

    bad_data = run("tools.bank.build", "--smoke", "--out", str(tmp_path / "b"), "--data", "nope")
    assert bad_data.returncode == 1 and "error: --data nope does not exist" in bad_data.stderr
    for cmd in ("tools.bank.compress", "tools.bank.report"):
        flag = "--out" if cmd.endswith("compress") else "--models"
        no_bank = run(cmd, flag, str(tmp_path / "nobank"))
        errors = [ln for ln in no_bank.stderr.splitlines() if ln.startswith("error:")]
        assert no_bank.returncode == 1 and len(errors) == 1, no_bank.stderr
        assert "nobank" in errors[0] and "Traceback" not in no_bank.stderr
    for args, why in (
        (("tools.bank.build", "--smoke", "--widths", "1.5"), "every width must be in (0, 1]"),
        (("tools.bank.build", "--smoke", "--max-steps", "0"), "--max-steps: must be at least 1"),
        (("tools.bank.distill", "--smoke", "--threads", "0"), "--threads: must be at least 1"),
        (("tools.bank.report", "--rounds", "0"), "--rounds: must be at least 1"),
    ):
        res = run(*args)
        assert res.returncode == 2 and why in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_a_data_path_that_is_a_file_or_a_partial_default_import_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--data FILE`` said "holds 0 of the 61"; a partial data/hapt under ``--data auto`` said
    "is not imported" (``--data DIR`` said how many it holds)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(data.DataSourceError, match=f"--data {afile} is a file, not a folder"):
        data.load_experiments(afile)
    partial = tmp_path / "hapt"
    partial.mkdir()
    for name in ("hapt-s01-e01.har.csv.gz", "hapt-s01-e02.har.csv.gz"):
        (partial / name).write_bytes(b"")
    monkeypatch.setattr(data, "DEFAULT_DATA", partial)
    monkeypatch.setattr(data, "_load_pickle", lambda: [])
    assert data.load_experiments(data.AUTO) == ([], data.load_experiments(None)[1])
    assert f"note: {partial} holds 2 of the 61 imported HAPT recordings (" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(data, "DEFAULT_DATA", tmp_path / "none")
    data.load_experiments(data.AUTO)
    assert f"note: {tmp_path / 'none'} is not imported (" in capsys.readouterr().err


def test_an_empty_data_path_is_refused() -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="is empty"):
        data.data_source("")
