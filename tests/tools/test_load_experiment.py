"""The load generator and a short run of the load experiment (real agent, real sessions)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tools import load_experiment
from tools.load_experiment import main
from tools.loadgen import LoadGenerator, Phase, parse_trace


@pytest.mark.parametrize(
    ("text", "phases"),
    [
        ("0:15,1:15,2:15,0:15", [Phase(0, 15), Phase(1, 15), Phase(2, 15), Phase(0, 15)]),
        ("3:0.5", [Phase(3, 0.5)]),
    ],
)
def test_parse_trace(text: str, phases: list[Phase]) -> None:
    assert parse_trace(text) == phases


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0:15,x", "busy:seconds"),
        ("-1:5", "busy workers"),
        ("1000:5", "busy workers"),
        ("1:0", "seconds"),
        ("1:4000", "seconds"),
        ("1:3000,1:3000", "more than"),
    ],
)
def test_bad_traces_are_named(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_trace(text)


def test_level_follows_the_trace() -> None:
    gen = LoadGenerator(parse_trace("0:1,2:1,1:1"))
    assert [gen.level_at(t) for t in (0.0, 0.99, 1.0, 1.5, 2.2, 3.0, 99.0)] == [0, 0, 2, 2, 1, 0, 0]
    assert gen.duration_s == 3.0


def test_workers_start_and_stop_by_themselves() -> None:
    gen = LoadGenerator(parse_trace("2:1.5"))
    gen.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(gen.alive()) < 2:
        time.sleep(0.05)
    pids = gen.alive()
    assert len(pids) == 2
    assert all(psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    gen.wait()  # returns when the trace is over: the workers ended on their own
    assert gen.alive() == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() == "running" for p in pids)


def test_stop_ends_the_load_early() -> None:
    gen = LoadGenerator(parse_trace("1:60"))
    gen.start()
    time.sleep(0.5)
    gen.stop()
    assert gen.alive() == []
    # ended by stop()'s SIGTERM, not by finishing the 60 s phase on their own (exit code 0)
    codes = [p.exitcode for p in gen._procs]
    assert codes and all(c is not None and c < 0 for c in codes), codes


def test_a_terminal_ctrl_c_is_left_to_the_experiment() -> None:
    """Ctrl-C reaches every process of the terminal's group: a worker that took it printed
    ``Process SpawnProcess-N:`` and a traceback before the experiment's ``interrupted``. The
    worker ignores it; the experiment's stop() ends it."""
    import os
    import signal

    gen = LoadGenerator(parse_trace("1:30"))
    gen.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not gen.alive():
            time.sleep(0.05)
        (pid,) = gen.alive()
        proc = psutil.Process(pid)
        while time.monotonic() < deadline and proc.cpu_times().user < 0.5:  # spinning by now
            time.sleep(0.05)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert gen.alive() == [pid]
    finally:
        gen.stop()
    assert gen.alive() == []
    assert [p.exitcode for p in gen._procs] == [-signal.SIGTERM]


def test_short_experiment_writes_its_figures(tmp_path: Path) -> None:
    out, png = tmp_path / "le.json", tmp_path / "le.png"
    rc = main(
        [
            "--trace",
            "0:2,1:2",
            "--speed",
            "40",
            "--work-factor",
            "2",
            "--calibration-runs",
            "3",
            "--modes",
            "static-smallest,adaptive",
            "--deadline-ms",
            "5",
            "--json",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0 and png.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert doc["work_factor"] == 2 and doc["static"]["static-smallest"]
    runs = {r["mode"]: r for r in doc["runs"]}
    assert set(runs) == {"static-smallest", "adaptive"}
    for r in runs.values():
        assert r["windows"] > 10
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert 0.0 <= r["miss_rate"] <= 1.0
        assert r["accuracy"] is not None and 0.5 < r["accuracy"] <= 1.0  # a labelled recording
        assert set(r["miss_rate_by_load"]) == {"0", "1"}  # the trace has both phases
    assert runs["static-smallest"]["members_used"] == [doc["static"]["static-smallest"]]
    assert runs["static-smallest"]["switches"] == 0
    assert all(v > 0 for v in doc["calibrated_p50_ms"].values())


def test_every_option_says_what_it_does_and_its_default() -> None:
    ap = load_experiment.build_parser()
    for action in ap._actions:
        assert action.help, action.option_strings
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "(" in action.help and ")" in action.help, action.option_strings
    text = ap.format_help()
    assert "docs/load-experiment.json: overwrites" in " ".join(text.split())
    assert "docs/img/load-experiment.png: overwrites" in " ".join(text.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["--speed", "-1"],
        ["--speed", "0"],
        ["--speed", "nan"],
        ["--deadline-ms", "0"],
        ["--dwell-s", "-1"],
        ["--monitor-s", "0"],
        ["--work-factor", "0"],
        ["--calibration-runs", "0"],
        ["--modes", ""],
        ["--modes", "fastest"],
    ],
)
def test_bad_numbers_and_modes_are_refused_at_parse_time(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_a_missing_recording_is_one_line_before_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a RecordingError traceback, raised after the members were calibrated."""

    def calibrated(*_: Any, **__: Any) -> None:
        raise AssertionError("calibration started")

    monkeypatch.setattr(load_experiment, "calibrate", calibrated)
    missing = tmp_path / "missing.har.csv.gz"
    out = ["--json", str(tmp_path / "le.json"), "--plot", str(tmp_path / "le.png")]
    assert main(["--recording", str(missing), *out]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {missing}: no such recording file\n"
    assert not (tmp_path / "le.json").exists()


def test_loadgen_names_itself_as_it_is_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Its usage line said ``loadgen.py``, which is not how it is run."""
    from tools import loadgen

    with pytest.raises(SystemExit) as exc:
        loadgen.main(["--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m tools.loadgen ")
    with pytest.raises(SystemExit) as exc:
        loadgen.main(["1:x"])
    assert exc.value.code == 2
    assert "python -m tools.loadgen: error: trace part '1:x'" in capsys.readouterr().err


@pytest.fixture
def no_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks under test come before the calibration: reaching it is a failure."""

    def calibrated(*_: Any, **__: Any) -> None:
        raise AssertionError("calibration started")

    monkeypatch.setattr(load_experiment, "calibrate", calibrated)


def test_outputs_that_cannot_be_written_are_refused_before_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_calibration: None
) -> None:
    """They were a FileExistsError / PermissionError traceback after the whole experiment."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    png = str(tmp_path / "le.png")
    assert main(["--json", str(afile / "x.json"), "--plot", png]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --json {afile / 'x.json'}: cannot write it ({afile} is a file)\n"
    assert main(["--json", str(tmp_path / "le.json"), "--plot", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: --plot {tmp_path}: is a folder, not a file\n"


def test_a_read_only_folder_is_refused_before_calibration(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_calibration: None,
) -> None:
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:  # (the tests may run as root)
        if Path(path).resolve() == ro.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    assert main(["--json", str(ro / "le.json"), "--plot", str(tmp_path / "le.png")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --json {ro / 'le.json'}: cannot write it ({ro} is read-only)\n"


def test_a_write_that_fails_at_the_end_is_one_line_and_the_figures_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk for the plot: one line, exit status 1 (a traceback after the runs), the
    summary still written; and the per-load figures printed to read (they were raw dicts of
    17-digit floats)."""
    import errno

    from tools.load_run import Run

    def run_mode(mode: str, *_: Any) -> Run:
        summary = {
            "members_used": ["wc-w0.10-r032", "wc-w1.00-r128"],
            "miss_rate_by_load": {"0": 0.0, "1": 0.25},
            "accuracy_by_load": {"0": 0.9310344827586207, "1": None},
        }
        return Run(mode, summary=summary)

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(load_experiment, "calibrate", lambda m, *_: {e.id: 1.0 for e in m.models})
    monkeypatch.setattr(load_experiment, "run_mode", run_mode)
    monkeypatch.setattr(load_experiment, "table", lambda runs: "| table |")
    monkeypatch.setattr(load_experiment, "plot", full)
    out, png = tmp_path / "le.json", tmp_path / "le.png"
    argv = ["--trace", "0:1", "--modes", "adaptive", "--json", str(out), "--plot", str(png)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[-1] == (
        "adaptive: members wc-w0.10-r032, wc-w1.00-r128; miss rate by load load 0: 0.00 %, "
        "load 1: 25.00 %; accuracy by load load 0: 93.10 %, load 1: -"
    )
    err = captured.err.splitlines()
    assert err[-1] == f"error: --plot {png}: cannot write it (No space left on device)"
    assert "Traceback" not in captured.err
    assert json.loads(out.read_text())["runs"][0]["accuracy_by_load"]["0"] > 0.93
