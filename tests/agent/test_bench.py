"""``har-agent bench`` on the real bank: every figure present and sane, machine formats, accuracy
on a recording, the policy's latency table, and bad input -> one clear line."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.bench import BenchOptions, bench_model, timed_loop
from agent.bench_figures import LatencyStats
from agent.bench_targets import Target
from agent.cli import app
from agent.manifest import load_manifest
from agent.onnx_params import onnx_param_count
from tests.agent.helpers import MODELS, ROOT, one_line_error, reference_predictions

runner = CliRunner()
MEMBER = "wc-w0.25-r064"
RECORDING = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"
QUICK = ["--runs", "30", "--warmup", "2", "--meter", "estimate"]


def bench(*args: str) -> Any:
    return runner.invoke(app, ["bench", *args])


# -- pure parts --------------------------------------------------------------------------------


def test_latency_stats() -> None:
    s = LatencyStats.of([k / 1000 for k in range(1, 101)])  # 1..100 ms
    assert (s.min_ms, s.max_ms) == pytest.approx((1.0, 100.0))
    assert s.mean_ms == pytest.approx(50.5)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.std_ms == pytest.approx(29.011, abs=1e-3)
    one = LatencyStats.of([0.002])
    assert one.std_ms == 0.0 and one.p50_ms == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("runs", "duration", "rule"),
    [(None, None, (200, 2.0)), (30, None, (30, 0.0)), (None, 1.5, (1, 1.5)), (5, 0.5, (5, 0.5))],
)
def test_stop_rule(runs: int | None, duration: float | None, rule: tuple[int, float]) -> None:
    assert BenchOptions(runs=runs, duration_s=duration).stop_rule == rule


def test_timed_loop_runs_exactly_n_and_times_each() -> None:
    calls: list[dict[str, Any]] = []
    arrays = [np.full(1, k) for k in (1, 2, 3)]
    times = timed_loop(lambda _o, f: calls.append(f), ["y"], "x", arrays, 7, 0.0)
    assert len(times) == 7 and all(t >= 0 for t in times)
    assert [int(c["x"][0]) for c in calls] == [1, 2, 3, 1, 2, 3, 1]


def test_param_count_reads_the_onnx_initializers() -> None:
    for entry in load_manifest(MODELS).models:
        if entry.family == "width-resolution":
            blob = (MODELS / entry.file).read_bytes()
            assert onnx_param_count(blob) == entry.params, entry.id


class RampMeter:
    """A measured meter whose power is a constant 3 W of wall time."""

    name = "ramp (measured)"
    kind = "measured"
    failure = None

    def __init__(self, resolution_s: float = 0.0) -> None:
        self.resolution_s = resolution_s
        self._t0 = time.perf_counter()

    def joules(self) -> float:
        return 3.0 * (time.perf_counter() - self._t0)

    def close(self) -> None:
        pass


def test_energy_per_inference_from_a_measured_meter() -> None:
    entry = load_manifest(MODELS).get(MEMBER)
    target = Target(entry.id, MODELS / entry.file, entry)
    opts = BenchOptions(warmup=1, runs=50, duration_s=0.1)
    r = bench_model(target, opts, meter=RampMeter(), idle=(1.0, "measured"))
    e = r.energy
    assert e is not None and e.kind == "measured" and e.idle_source == "measured"
    per_run_s = r.wall_s / r.runs
    assert e.total_mj_per_inference == pytest.approx(3e3 * per_run_s, rel=0.05)
    assert e.mj_per_inference == pytest.approx(2e3 * per_run_s, rel=0.05)  # 3 W minus 1 W idle
    # without a baseline a measured meter reports the total only
    r = bench_model(target, BenchOptions(warmup=1, runs=5), meter=RampMeter())
    assert r.energy is not None and r.energy.mj_per_inference is None
    # a loop shorter than ten of the meter's samples reports why instead of a number
    r = bench_model(target, BenchOptions(warmup=1, runs=5), meter=RampMeter(resolution_s=60))
    assert r.energy is None and r.energy_note and "too short" in r.energy_note


# -- the command -------------------------------------------------------------------------------


def check_figures(r: dict[str, Any], runs: int) -> None:
    lat = r["latency"]
    order = ["min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"]
    values = [lat[k] for k in order]
    assert all(v > 0 for v in values) and values == sorted(values), lat
    assert lat["min_ms"] <= lat["mean_ms"] <= lat["max_ms"] and lat["std_ms"] >= 0
    assert r["runs"] == runs
    assert r["ips"] > 0 and r["wall_s"] > 0
    assert r["init_ms"] > 0 and r["first_ms"] > 0
    assert r["cpu_percent"] > 0
    assert 0 < r["rss_mb"] <= r["peak_rss_mb"] and r["session_mb"] >= 0


def test_bench_a_bank_member_json() -> None:
    result = bench("-m", MEMBER, *QUICK, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    entry = load_manifest(MODELS).get(MEMBER)
    assert body["bench_version"] == 1 and body["threads"] == 1 and body["board"]
    assert body["meter_kind"] == "estimated"
    (r,) = body["results"]
    check_figures(r, 30)
    assert r["model"] == MEMBER and r["source"] == "manifest"
    assert r["file_bytes"] == (MODELS / entry.file).stat().st_size
    assert (r["params"], r["macs"]) == (entry.params, entry.macs)
    assert r["input_shape"] == list(entry.input.shape) and r["inputs"] == "random"
    e = r["energy"]
    assert e["kind"] == "estimated" and "estimated" in e["meter"]
    assert 0 < e["mj_per_inference"] < e["total_mj_per_inference"]
    assert r["accuracy"] is None


def test_no_model_is_charged_with_onnx_runtimes_start_up() -> None:
    """The first session a process runs pays ONNX Runtime's one-time start-up (13-17 MiB here):
    bench charged it to the first model, so a 15.6 KiB member showed 'session + first runs
    13.5 MiB'. A fresh process, as a user runs it (in pytest's, earlier tests paid it)."""
    args = ["-m", "wc-w0.10-r032", "--runs", "5", "--warmup", "2", "--meter", "none"]
    body = json.loads(_fresh_python("-m", "agent", "bench", *args, "--json"))
    (r,) = body["results"]
    assert r["session_mb"] < 2.0, r["session_mb"]  # a 15.6 KiB model's session and buffers
    assert body["startup_model"] == "wc-w0.10-r064"  # another member, the same kernels
    assert body["startup_mb"] > 5.0  # paid by the throwaway session, reported on its own
    term = bench(*args)
    assert term.exit_code == 0, term.output
    line = next(ln for ln in term.stdout.splitlines() if ln.startswith("start-up"))
    assert "ONNX Runtime's one-time cost in this process" in line and "wc-w0.10-r064" in line


_SESSION_MB = """
import json, sys
from agent.bench import BenchOptions, bench_model, prime_runtime
from agent.bench_targets import resolve_targets
from agent.manifest import load_manifest
m = load_manifest(sys.argv[1])
ts = [resolve_targets(i, m)[0] for i in sys.argv[2:]]
opts = BenchOptions(runs=5, warmup=2)
prime_runtime(ts[0], opts)
print(json.dumps([bench_model(t, opts).session_mb for t in ts]))
"""


def _fresh_python(*args: str) -> str:
    """stdout of ``python ARGS`` in a new process (ONNX Runtime's start-up not paid yet)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _session_mbs(*ids: str) -> list[float]:
    out: list[float] = json.loads(_fresh_python("-c", _SESSION_MB, str(MODELS), *ids))
    return out


def test_a_model_benchmarked_alone_shows_its_whole_session() -> None:
    """prime_runtime warmed ONNX Runtime with a throwaway session of the very model it then
    measured: that session's memory went back to the allocator and the measured session reused
    it (wc-w1.00-r128 alone: session 3.6 MiB here, 0.76 on the VM; after another model 5.7 and
    2.17). Now it primes with another member that runs the same kernels. Fresh processes."""
    (alone,) = _session_mbs("wc-w1.00-r128")
    _, after = _session_mbs("wc-w0.50-r096", "wc-w1.00-r128")
    assert abs(alone - after) <= max(0.5, 0.2 * after), (alone, after)


def test_the_primer_runs_the_same_kernels_and_is_not_the_model() -> None:
    from agent.bench import SELF_PRIMED_NOTE, choose_primer
    from agent.bench_targets import resolve_targets

    manifest = load_manifest(MODELS)
    for model_id in ("wc-w1.00-r128", "pr25-wc-w1.00-r128", "q8-cnn1d-base"):
        (target,) = resolve_targets(model_id, manifest)
        primer = choose_primer(target, manifest)
        assert primer.note is None and primer.target.name != model_id
        assert primer.target.entry is not None and target.entry is not None
        family = target.entry.family
        if sum(m.family == family for m in manifest.models) > 1:
            assert primer.target.entry.family == family
        else:  # the bank's only int8 member: another member still, never itself
            assert primer.target.entry.family != family
    (target,) = resolve_targets("wc-w1.00-r128", manifest)
    assert choose_primer(target, manifest).target.name == "wc-w0.10-r032"  # the smallest
    # the manifest beside the file is found when none is given
    (target,) = resolve_targets("wc-w0.10-r032", manifest)
    assert choose_primer(target).target.name == choose_primer(target, manifest).target.name
    outside = Target("x.onnx", MODELS / "wc-w0.10-r032.onnx")
    assert choose_primer(outside) == type(choose_primer(outside))(outside, SELF_PRIMED_NOTE)


def test_a_self_primed_model_says_so() -> None:
    """A file outside the manifest has no other model to prime with: its result says that the
    start-up figure may hold some of its own memory."""
    import subprocess
    import sys

    path = str(MODELS / "wc-w0.10-r032.onnx")
    args = ["-m", path, "--runs", "3", "--warmup", "1", "--meter", "none", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert any("start-up figure may include" in n for n in r["notes"]), r["notes"]


def test_bench_terminal_table_and_csv(tmp_path: Path) -> None:
    result = bench("-m", MEMBER, *QUICK)
    assert result.exit_code == 0, result.output
    for word in ("session init", "first run", "p99", "inferences/s", "CPU", "RSS", "mJ/inference"):
        assert word in result.stdout
    out = tmp_path / "b.csv"
    result = bench("-m", MEMBER, *QUICK, "--csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "p50" in result.stdout  # the table still shows on the terminal
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["model"] == MEMBER and int(row["runs"]) == 30
    assert float(row["min_ms"]) <= float(row["p50_ms"]) <= float(row["max_ms"])
    assert float(row["energy_mj"]) > 0 and row["meter_kind"] == "estimated"


def test_bench_on_a_recording_gives_the_agents_accuracy() -> None:
    member = "wc-w0.50-r064"  # 25 Hz: the recording's 50 Hz is resampled as the agent does
    result = bench("-m", member, *QUICK, "--data", str(RECORDING), "--json")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    check_figures(r, 30)
    preds, truths = reference_predictions(RECORDING, load_manifest(MODELS).get(member))
    entry = load_manifest(MODELS).get(member)
    # windows labelled with a class the model has not (HAPT's transitions) are not scored
    scored = [(p, t) for p, t in zip(preds, truths, strict=True) if t in entry.labels]
    assert len(scored) < sum(t is not None for t in truths)
    expected = sum(entry.labels[p] == t for p, t in scored) / len(scored)
    assert r["windows"] == len(preds) and r["labelled"] == len(scored)
    assert r["accuracy"] == pytest.approx(expected)
    assert r["inputs"].startswith("recording")


def test_bench_duration_and_plain_check() -> None:
    result = bench("-m", MEMBER, "--duration", "0.2", "--warmup", "1", "--json", "--meter", "none")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    assert r["runs"] >= 1 and r["wall_s"] >= 0.2 and r["energy"] is None
    result = bench("-m", MEMBER, *QUICK, "--check-plain", "--json")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    p = r["plain"]
    assert p["blocks"] == 10 and p["runs_each"] == r["runs"] >= 30
    assert p["bench_p50_ms"] == pytest.approx(r["latency"]["p50_ms"])
    assert p["plain_p50_ms"] > 0 and p["ratio"] == pytest.approx(
        p["bench_p50_ms"] / p["plain_p50_ms"]
    )


@pytest.mark.parametrize(("runs", "blocks"), [(25, 10), (7, 7), (10, 10)])
def test_runs_with_the_plain_check_are_exactly_n(runs: int, blocks: int) -> None:
    """--runs N with --check-plain gave ceil(N / 10) * 10 timed runs (25: 30)."""
    args = ["-m", MEMBER, "--runs", str(runs), "--warmup", "1", "--meter", "none"]
    result = bench(*args, "--check-plain", "--json")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    assert r["runs"] == runs and r["plain"]["runs_each"] == runs
    assert r["plain"]["blocks"] == blocks  # blocks that ran (fewer runs than blocks: fewer)


def test_split_runs() -> None:
    from agent.bench import split_runs

    assert split_runs(25, 10) == [3] * 5 + [2] * 5
    assert split_runs(3, 10) == [1, 1, 1] + [0] * 7
    assert split_runs(200, 10) == [20] * 10


def test_bench_all_writes_the_latency_table(tmp_path: Path) -> None:
    table = tmp_path / "table.json"
    args = ["-m", "all", "--runs", "5", "--warmup", "1", "--meter", "none", "--table", str(table)]
    result = bench(*args)
    assert result.exit_code == 0, result.output
    ids = [m.id for m in load_manifest(MODELS).models]
    for mid in ids:
        assert mid in result.stdout
    # one column per figure, aligned even for the longest ids (e.g. pr50-wc-w1.00-r128)
    rows = [ln for ln in result.stdout.splitlines() if ln.split(" ", 1)[0] in ids]
    assert len(rows) == len(ids)
    assert len({len(ln) for ln in rows}) == 1, rows
    body = json.loads(table.read_text())
    assert body["table_version"] == 1 and body["threads"] == 1
    assert body["board"] and body["onnxruntime"] and body["created"]
    assert list(body["models"]) == ids
    assert "after a 20 ms pause" in body["measured"]
    for row in body["models"].values():
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["mean_ms"] > 0 and row["back_to_back_p50_ms"] > 0
    # the terminal's last column is the paced p50 the table records
    head = next(ln for ln in result.stdout.splitlines() if ln.startswith("model "))
    assert head.endswith("paced p50")
    for line in rows:
        mid = line.split(" ", 1)[0]
        assert float(line.split()[-1]) == pytest.approx(body["models"][mid]["p50_ms"], abs=1e-4)


def test_with_a_table_the_terminal_and_the_csv_show_the_paced_figures(tmp_path: Path) -> None:
    """The table records the paced p50; the terminal and the CSV show it too, beside the
    back-to-back one (they showed only the back-to-back figure, several times smaller)."""
    table, out = tmp_path / "table.json", tmp_path / "b.csv"
    args = ["-m", MEMBER, *QUICK, "--table", str(table)]
    result = bench(*args)
    assert result.exit_code == 0, result.output
    recorded = json.loads(table.read_text())["models"][MEMBER]
    (shown,) = [ln.split() for ln in result.stdout.splitlines() if ln.startswith("paced ms")]
    assert float(shown[3]) == pytest.approx(recorded["p50_ms"], abs=1e-4)
    assert "what --table records" in result.stdout
    result = bench(*args, "--csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    recorded = json.loads(table.read_text())["models"][MEMBER]
    assert float(row["paced_p50_ms"]) == pytest.approx(recorded["p50_ms"], abs=1e-5)
    assert float(row["paced_p90_ms"]) == pytest.approx(recorded["p90_ms"], abs=1e-5)
    assert float(row["p50_ms"]) == pytest.approx(recorded["back_to_back_p50_ms"], abs=1e-5)
    # without --table: no paced figures anywhere
    result = bench("-m", MEMBER, *QUICK, "--csv")
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["paced_p50_ms"] == "" and "paced" not in bench("-m", MEMBER, *QUICK).stdout


def test_the_json_header_names_the_idle_power_the_estimate_used(tmp_path: Path) -> None:
    """The estimate's "with idle" figure adds the profile's energy.idle_w: the header says which
    (it said null)."""
    profile = tmp_path / "p.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    assert "[energy]" not in text
    profile.write_text(text + "\n[energy]\nidle_w = 1.25\n")
    result = bench("-m", MEMBER, *QUICK, "--profile", str(profile), "--dir", str(MODELS), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["idle_w"], body["idle_source"]) == (1.25, "profile")
    (r,) = body["results"]
    assert r["energy"]["idle_w"] == 1.25
    shown = bench("-m", MEMBER, *QUICK, "--profile", str(profile), "--dir", str(MODELS)).stdout
    assert "idle 1.250 W (the profile's energy.idle_w)" in shown
    none = json.loads(bench("-m", MEMBER, *QUICK[:-2], "--meter", "none", "--json").stdout)
    assert (none["idle_w"], none["idle_source"]) == (None, None)


def test_the_table_times_runs_one_at_a_time_as_the_daemon_runs_them() -> None:
    """The daemon runs a model once per hop; the table's figure comes from runs timed alone,
    each after a pause, not from the back-to-back loop (several times faster for small
    members). Checked on the loop itself: how many runs, and a pause before each."""
    from agent import bench as bench_mod

    calls: list[str] = []

    def run(_outs: object, _feed: object) -> None:
        calls.append("run")

    real_sleep = bench_mod.time.sleep
    try:
        bench_mod.time.sleep = lambda s: calls.append(f"sleep {s}")  # type: ignore[assignment]
        times = bench_mod.paced_loop(run, ["y"], "x", [np.zeros(1)], 3)
    finally:
        bench_mod.time.sleep = real_sleep  # type: ignore[assignment]
    assert len(times) == 3
    assert calls == [f"sleep {bench_mod.PACED_GAP_S}", "run"] * 3


def test_the_policy_reads_the_table(tmp_path: Path) -> None:
    import agent.latency as latency  # our own module: an ImportError must fail, not skip

    table = tmp_path / "table.json"
    result = bench("-m", MEMBER, "--runs", "5", "--meter", "none", "--table", str(table))
    assert result.exit_code == 0, result.output
    assert set(latency.load_latency_table(table)) == {MEMBER}


def test_bench_a_file_outside_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "mine.onnx"
    shutil.copy(MODELS / f"{MEMBER}.onnx", path)
    result = bench("-m", str(path), *QUICK, "--json")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)["results"]
    check_figures(r, 30)
    assert r["source"] == "file" and r["macs"] is None and r["accuracy"] is None
    assert r["params"] == load_manifest(MODELS).get(MEMBER).params  # counted from the file
    assert r["input_shape"] == [1, 64, 6]
    assert any("no sha256 check" in n for n in r["notes"])
    result = bench("-m", str(path), *QUICK)
    assert "not in the manifest: no sha256 check" in result.stdout


# -- bad input ---------------------------------------------------------------------------------


def test_unknown_model_id() -> None:
    one_line_error(bench("-m", "no-such-model", *QUICK), "'no-such-model' is not in")


def test_missing_model_file() -> None:
    one_line_error(bench("-m", "missing.onnx", *QUICK), "missing.onnx: no such model file")


def test_corrupt_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    one_line_error(bench("-m", str(bad), *QUICK), "ONNX Runtime cannot load the model")


def test_tampered_bank_member(tmp_path: Path) -> None:
    bank = tmp_path / "models"
    bank.mkdir()
    shutil.copy(MODELS / "manifest.json", bank)
    blob = bytearray((MODELS / f"{MEMBER}.onnx").read_bytes())
    blob[-1] ^= 0xFF
    (bank / f"{MEMBER}.onnx").write_bytes(bytes(blob))
    one_line_error(bench("-m", MEMBER, "--dir", str(bank), *QUICK), "does not match the manifest")


def test_bad_recordings(tmp_path: Path) -> None:
    one_line_error(
        bench("-m", MEMBER, *QUICK, "--data", str(tmp_path / "none.har.csv")),
        "no such recording file",
    )
    junk = tmp_path / "junk.har.csv"
    junk.write_text("hello\n")
    one_line_error(bench("-m", MEMBER, *QUICK, "--data", str(junk)), "not a har-agent recording")


def test_bad_option_combinations(tmp_path: Path) -> None:
    path = tmp_path / "mine.onnx"
    shutil.copy(MODELS / f"{MEMBER}.onnx", path)
    one_line_error(bench("-m", str(path), *QUICK, "--data", str(RECORDING)), "needs a bank member")
    one_line_error(bench("-m", MEMBER, *QUICK, "--json", "--csv"), "one of --json and --csv")
    one_line_error(bench("-m", MEMBER, "--meter", "joulemeter"), "--meter must be one of")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--duration", "inf"],
            "--duration takes a finite number of seconds, at most 3600 (got inf)",
        ),
        (["--duration", "3601"], "--duration takes a finite number of seconds, at most 3600"),
        (
            ["--baseline", "inf"],
            "--baseline takes a finite number of seconds, at most 600 (got inf)",
        ),
        (["--baseline", "601"], "--baseline takes a finite number of seconds, at most 600"),
    ],
)
def test_durations_must_be_finite_and_bounded(args: list[str], line: str, monkeypatch: Any) -> None:
    """``--duration inf`` timed forever; ``--baseline inf`` would sleep forever with a measured
    meter: refused in one line before anything is measured or slept."""
    import agent.bench

    def measured(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("measured before the refusal")

    for name in ("bench_model", "measure_idle_power", "prime_runtime"):
        monkeypatch.setattr(agent.bench, name, measured, raising=False)
    one_line_error(bench("-m", MEMBER, "--meter", "none", *args), line)


def test_the_longest_durations_are_let_by() -> None:
    from agent.cli_bench import MAX_BASELINE_S, MAX_DURATION_S, check_seconds

    assert check_seconds("--duration", MAX_DURATION_S, MAX_DURATION_S) is None
    assert check_seconds("--baseline", 0.0, MAX_BASELINE_S) is None
    assert check_seconds("--duration", None, MAX_DURATION_S) is None
    assert check_seconds("--duration", float("nan"), MAX_DURATION_S) is not None


def test_output_paths_are_checked_before_measuring(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "x.json"
    for opt in ("--out", "--table"):
        result = bench("-m", MEMBER, *QUICK, "--json", opt, str(missing))
        one_line_error(result, f"{missing}: cannot write (no folder {missing.parent})")
        assert "p50" not in result.stdout  # nothing was measured


def test_interrupted_bench_all_keeps_the_rows_measured(monkeypatch: Any) -> None:
    """Ctrl-C in the middle of ``-m all``: the rows so far are printed, exit status 130."""
    import agent.bench

    real = agent.bench.bench_model
    calls = []

    def interrupted_on_the_third(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(agent.bench, "bench_model", interrupted_on_the_third)
    result = bench("-m", "all", "--runs", "3", "--warmup", "1", "--meter", "none", "--json")
    assert result.exit_code == 130, result.output
    body = json.loads(result.stdout)
    n = len(load_manifest(MODELS).models)
    assert len(body["results"]) == 2 and body["interrupted"] == f"2 of {n}"
    assert f"interrupted: 2 of {n} models measured" in result.stderr


@pytest.mark.skipif(Path("/sys/class/powercap").exists(), reason="this machine has powercap")
def test_a_named_meter_that_is_absent_is_an_error() -> None:
    # not a silent fall-back to the estimate: the profile (or --meter) asked for this meter
    one_line_error(bench("-m", MEMBER, "--meter", "rapl", "--runs", "2"), "no RAPL")


def test_bench_help() -> None:
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0 and "--check-plain" in result.output


def test_every_refusal_comes_before_anything_is_measured(tmp_path: Path, monkeypatch: Any) -> None:
    """Conflicting options, an --out without a format or naming a folder, a negative seed, and
    an altered file among 'all' are refused before the first model is measured."""
    import agent.bench

    def measured(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a model was measured before the refusal")

    monkeypatch.setattr(agent.bench, "bench_model", measured)
    one_line_error(bench("-m", "all", *QUICK, "--json", "--csv"), "one of --json and --csv")
    one_line_error(
        bench("-m", MEMBER, *QUICK, "--out", str(tmp_path / "x.out")), "add --json or --csv"
    )
    one_line_error(bench("-m", MEMBER, *QUICK, "--json", "--out", ""), "a folder, not a file")
    assert bench("-m", MEMBER, *QUICK, "--seed", "-1").exit_code == 2
    assert bench("-m", MEMBER, *QUICK, "--threads", "100000").exit_code == 2
    bank = tmp_path / "models"
    shutil.copytree(MODELS, bank)
    (bank / "wc-w0.50-r064.onnx").write_bytes(b"truncated")
    one_line_error(bench("-m", "all", "--dir", str(bank), *QUICK), "wc-w0.50-r064.onnx: sha256")


def test_out_writes_through_a_link_and_into_a_device(tmp_path: Path) -> None:
    """A symbolic link stays a link (its target gets the JSON); a device is written to, never
    replaced by a file (as root, renaming over /dev/full would have replaced it)."""
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = bench("-m", MEMBER, *QUICK, "--json", "--out", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads(target.read_text())["results"][0]["model"] == MEMBER
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    result = bench("-m", MEMBER, *QUICK, "--json", "--out", str(fifo))
    reader.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(got[0])["results"]
