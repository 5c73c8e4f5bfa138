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
