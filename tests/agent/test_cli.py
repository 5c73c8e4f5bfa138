"""The command line: help, models list, and bad input -> one clear line, non-zero exit."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.agent.helpers import (
    DEFAULT_PROFILE,
    RECORDINGS,
    ROOT,
    Subscriber,
    default_entry,
    error_line,
    one_line_error,
)
from tests.conftest import closed_port, start_broker, stop_broker

runner = CliRunner()


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["replay", "--help"], ["models", "list", "--help"]]
)
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("har-agent ")


def test_models_list() -> None:
    result = runner.invoke(app, ["models", "list", "--profile", str(DEFAULT_PROFILE)])
    assert result.exit_code == 0
    assert default_entry().id in result.output and "acc %" in result.output


def test_models_list_checks_every_file(tmp_path: Path) -> None:
    import shutil

    bank = tmp_path / "bank"
    shutil.copytree(ROOT / "models", bank)
    (bank / "wc-w0.10-r032.onnx").unlink()
    with open(bank / "cnn1d-base.onnx", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    result = runner.invoke(app, ["models", "list", "--dir", str(bank)])
    assert result.exit_code == 1
    rows = {ln.split()[0]: ln.split()[-1] for ln in result.stdout.splitlines()[2:] if ln.strip()}
    assert rows["wc-w0.10-r032"] == "missing" and rows["cnn1d-base"] == "altered"
    assert rows["wc-w0.75-r096"] == "ok"
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("har-agent: error:")]
    assert errors == [
        "har-agent: error: 2 model file(s) missing or not as the manifest says: "
        "cnn1d-base (altered), wc-w0.10-r032 (missing)"
    ]


def test_replay_to_stdout() -> None:
    result = runner.invoke(
        app,
        ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)],
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("har/demo/prediction ")]
    assert len(lines) > 50
    assert "accuracy" in result.stderr


def test_replay_timing_report() -> None:
    result = runner.invoke(
        app,
        [
            "replay",
            str(RECORDINGS[0]),
            "--fast",
            "--no-mqtt",
            "--timing",
            "--profile",
            str(DEFAULT_PROFILE),
        ],
    )
    assert result.exit_code == 0, result.output
    # with --no-mqtt stdout carries the messages alone ('topic payload' lines); the report and
    # the summary go to stderr
    assert "overhead / raw inference" in result.stderr
    assert all(line.startswith("har/") for line in result.stdout.splitlines())


def _adaptive_timing_profile(tmp_path: Path) -> Path:
    """The default profile, adaptive over three members of different input lengths (96, 128
    and 32 samples), a budget nothing misses: switches come from the heat the test injects."""
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text += (
        '\n[policy]\nmode = "adaptive"\n'
        'candidates = ["wc-w0.75-r096", "wc-w0.25-r128", "wc-w0.12-r032"]\n'
        "deadline_ms = 1000.0\ndwell_s = 0.0\n"
    )
    prof = tmp_path / "adaptive.toml"
    prof.write_text(text)
    return prof


def _heated_after(monkeypatch: pytest.MonkeyPatch, hot: int, cool: int) -> None:
    """Make the CLI's agent run hot from its ``hot``-th window to its ``cool``-th: the thermal
    guard steps down to wc-w0.25-r128 and back up (no resource monitor: the heat alone)."""
    import agent.wiring
    from tests.agent.test_adaptive import snap

    real = agent.wiring.build_agent

    def build(prof: Any, *, options: Any, observer: Any = None, **kw: Any) -> Any:
        seen = [0]

        def heat(p: Any) -> None:
            seen[0] += 1
            ctl = built.pipeline.controller
            if seen[0] == hot:
                ctl.on_snapshot(snap(85.0))
            elif seen[0] == cool:
                ctl.on_snapshot(snap(40.0))
            if observer is not None:
                observer(p)

        options = dataclasses.replace(options, monitor=False)
        built = real(prof, options=options, observer=heat, **kw)
        return built

    monkeypatch.setattr(agent.wiring, "build_agent", build)


def test_replay_timing_of_an_adaptive_run_times_each_window_on_its_own_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare loop used to run every window on the final member (normalised with its
    statistics): a traceback when their input lengths differ (96 against 128 samples)."""
    _heated_after(monkeypatch, hot=20, cool=60)
    prof = _adaptive_timing_profile(tmp_path)
    args = ["replay", str(RECORDINGS[0]), "--no-mqtt", "--timing", "--device", "timing-test"]
    result = runner.invoke(app, [*args, "--profile", str(prof)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 0, result.output
    assert "2 configuration switches" in result.stderr
    err = result.stderr.splitlines()
    raw = next(ln for ln in err if ln.startswith("raw session.run loop"))
    assert raw.endswith("(same windows, each on the member that classified it)")
    # one row per member that ran, in the order they first ran; the windows add up
    start = err.index(next(ln for ln in err if ln.startswith("by member")))
    rows = [ln.split() for ln in err[start + 2 : start + 4]]
    assert [r[0] for r in rows] == ["wc-w0.75-r096", "wc-w0.25-r128"]
    windows = int(next(ln for ln in err if ln.startswith("windows ")).split()[-1])
    assert sum(int(r[1]) for r in rows) == windows
    assert int(rows[1][1]) == 40  # windows 20 to 59 ran hot
    assert all(r[-1] == "%" and float(r[-2]) > 0 for r in rows)


def test_replay_timing_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that fails in the bare loop ends in the usual error line, not a traceback."""
    import agent.timing
    from agent.errors import ModelError

    def broken(*_: Any, **__: Any) -> list[float]:
        raise ModelError("model 'x': inference failed (broken)")

    monkeypatch.setattr(agent.timing, "raw_times_on_own_members", broken)
    args = ["replay", str(RECORDINGS[0]), "--no-mqtt", "--timing", "--device", "timing-test"]
    result = runner.invoke(app, [*args, "-m", "wc-w0.10-r032"])
    one_line_error(result, "model 'x': inference failed (broken)")


def test_a_recording_too_short_for_a_window_says_so(tmp_path: Path) -> None:
    import gzip

    lines = gzip.open(RECORDINGS[0], "rt").read().split("\n")
    short = tmp_path / "short.har.csv"
    short.write_text("\n".join(lines[: 2 + 150]) + "\n")  # 3 s at 50 Hz
    result = runner.invoke(app, ["replay", str(short), "--fast", "--no-mqtt"])
    assert result.exit_code == 0, result.output
    assert "0 windows in" in result.stderr
    assert "the recording holds 150 samples, 3.00 s: not enough for one 2.56 s window" in (
        result.stderr
    )
    one = runner.invoke(app, ["replay", str(short), "--fast", "--no-mqtt", "-m", "cnn1d-base"])
    assert one.exit_code == 0 and "1 window in" in one.stderr and "not enough" not in one.stderr


def test_replay_timing_without_a_window_says_so_in_one_line(tmp_path: Path) -> None:
    """It printed a report of zeros and 'nan %'. A replay that classified nothing is not an
    error (exit 0, as without --timing)."""
    from agent.recording import read_recording
    from agent.recording_writer import RecordingWriter

    header, chunk = read_recording(RECORDINGS[0])
    short = tmp_path / "short.har.csv.gz"
    with RecordingWriter(short, header) as w:
        labels = chunk.labels[:58] if chunk.labels is not None else None
        w.write(chunk.t[:58], chunk.values[:58], labels)
    args = ["replay", str(short), "--no-mqtt", "--timing", "--device", "timing-test"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 windows in" in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == (
        "no windows to time: the recording did not fill one window (see the line above)"
    )
    assert "nan" not in result.stderr and "windows per second" not in result.stderr


def test_missing_recording(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["replay", str(tmp_path / "nope.har.csv"), "--no-mqtt", "--profile", str(DEFAULT_PROFILE)],
    )
    one_line_error(result, "no such recording file")


def test_corrupt_recording(tmp_path: Path) -> None:
    bad = tmp_path / "bad.har.csv.gz"
    bad.write_bytes(RECORDINGS[0].read_bytes()[:5000])  # truncated gzip
    result = runner.invoke(
        app, ["replay", str(bad), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    )
    one_line_error(result, str(bad))


def test_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "x.har.csv"
    bad.write_text("hello\n")
    result = runner.invoke(
        app, ["replay", str(bad), "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    )
    one_line_error(result, "not a har-agent recording")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (("[mqtt]", "[mqtt]\nhots = 1"), "unknown key 'mqtt.hots'"),
        (("port = 1883", 'port = "x"'), "mqtt.port must be an integer"),
        (('method = "mean"', 'method = "median"'), "smoothing.method"),
        # a fuzz review's finds: each crashed `run` later, or looped on tracebacks
        (('host = "localhost"', 'host = ""'), "mqtt.host must not be empty"),
        (('host = "localhost"', 'host = "../../etc"'), "mqtt.host '../../etc' is not a host"),
        (('host = "localhost"', f'host = "{"h" * 5000}"'), "longer than 253 characters"),
        (("qos = 1", 'qos = 1\ncredentials_file = "c\\u0000"'), "credentials_file must not"),
        (("[logging]", '[outbox]\npath = "o\\u0000"\n[logging]'), "outbox.path must not"),
        (('path = "../rec', f'path = "{"a" * 5000}/../rec'), "source.path is 5"),
        (("speed = 1.0", "speed = nan"), "source.speed must be a finite number"),
        (("speed = 1.0", "speed = inf"), "source.speed must be a finite number"),
        (('id = "demo"', 'id = "demo\\n"'), "device.id must be 1-64"),
        (('topic_prefix = "har"', 'topic_prefix = "har\\n"'), "mqtt.topic_prefix"),
        (("name = ", "x = " + "[" * 5000 + "]" * 5000 + "\nname = "), "nested too deeply"),
    ],
)
def test_bad_profile(tmp_path: Path, edit: tuple[str, str], fragment: str) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(DEFAULT_PROFILE.read_text().replace(*edit))
    result = runner.invoke(app, ["run", "--profile", str(prof)])
    one_line_error(result, fragment)


def test_missing_profile(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--profile", str(tmp_path / "none.toml")])
    one_line_error(result, "no such profile")


def test_unreachable_broker_subprocess(tmp_path: Path) -> None:
    """The real entry point, in a fresh process: a replay (no outbox) with no broker gives one
    line on stderr, exit status 1. (``run`` keeps spooling instead: test_reliability_startup.)"""
    prof = tmp_path / "p.toml"
    with closed_port() as port:  # refuses, and nothing can self-connect to it
        text = DEFAULT_PROFILE.read_text().replace("port = 1883", f"port = {port}")
        text = text.replace('"../', f'"{ROOT}/')
        prof.write_text(text)
        proc = subprocess.run(
            [sys.executable, "-m", "agent", "replay", str(RECORDINGS[0]), "--profile", str(prof)],
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("har-agent: error:")]
    assert len(errors) == 1 and "cannot reach the MQTT broker" in errors[0]
    assert errors[0].endswith("; to replay without a broker, add --no-mqtt")
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_replay_that_loses_the_broker_fails(tmp_path: Path) -> None:
    """The broker goes away mid-replay and never comes back: predictions are lost, so the
    replay must not end with status 0 (it did, after one warning)."""
    broker = start_broker(tmp_path)
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace("port = 1883", f"port = {broker.port}")
    prof.write_text(text.replace('"../', f'"{ROOT}/'))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "replay", str(RECORDINGS[0]), "--speed", "40"]
        + ["--profile", str(prof)],
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        sub = Subscriber(broker.port)  # wait until it is connected and publishing, not a sleep
        try:
            assert sub.wait_for("/prediction", 3, timeout=60)
        finally:
            sub.close()
        assert proc.poll() is None  # a 40x replay of 5.5 min takes ~8 s
    finally:
        stop_broker(broker)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 1, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("har-agent: error:")]
    assert len(errors) == 1 and "messages were not delivered to the MQTT broker" in errors[0]
    assert "closed without a DISCONNECT: broker stopped or network lost" in stderr
    assert "Traceback" not in stderr


def test_replay_client_id_differs_from_the_daemons() -> None:
    """Two clients with one id knock each other off the broker: a replay with the daemon's
    profile gets an id of its own."""
    from agent.profile import load_profile
    from agent.publisher_factory import client_id

    prof = load_profile(DEFAULT_PROFILE)
    assert client_id(prof) == "har-agent-demo"
    assert client_id(prof, replay=True) == f"har-agent-demo-replay-{os.getpid()}"


def test_replay_as_another_device() -> None:
    res = runner.invoke(
        app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--device", "bench-1"]
    )
    assert res.exit_code == 0, res.output
    topics = {line.split(" ", 1)[0] for line in res.stdout.splitlines() if line.startswith("har/")}
    assert "har/bench-1/prediction" in topics and not any("/demo/" in t for t in topics)
    bad = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--no-mqtt", "--device", "a/b"])
    assert bad.exit_code == 1 and "--device 'a/b'" in bad.stderr


def test_replay_speed_defaults_to_the_profile(tmp_path: Path, monkeypatch: Any) -> None:
    import agent.wiring
    from agent.errors import AgentError

    seen: list[float] = []

    def capture(profile: Any, *, options: Any, **_: Any) -> Any:
        seen.append(options.speed)
        raise AgentError("stop here")

    monkeypatch.setattr(agent.wiring, "build_agent", capture)
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace("speed = 1.0", "speed = 5.0"))
    for extra in ([], ["--speed", "2"], ["--fast"]):
        runner.invoke(app, ["replay", str(RECORDINGS[0]), "--no-mqtt", "-p", str(prof), *extra])
    assert seen == [5.0, 2.0, 0.0]


def test_print_with_no_mqtt_keeps_stdout_machine_readable() -> None:
    """--print's human lines go to stderr when stdout carries the messages (--no-mqtt)."""
    res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--print"])
    assert res.exit_code == 0, res.output
    out = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert out and all(ln.startswith("har/demo/") for ln in out)
    human = [ln for ln in res.stderr.splitlines() if ln.startswith("#")]
    predictions = [ln for ln in out if ln.startswith("har/demo/prediction ")]
    assert len(human) == len(predictions) > 200


def test_profile_from_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    """HAR_AGENT_PROFILE (what the systemd unit sets) picks the profile when --profile is not
    given."""
    prof = tmp_path / "env.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace('id = "demo"', 'id = "from-env"'))
    monkeypatch.setenv("HAR_AGENT_PROFILE", str(prof))
    res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt"])
    assert res.exit_code == 0, res.output
    assert "har/from-env/prediction " in res.stdout


def test_ctrl_c_during_start_up_is_one_line(
    monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while Python still imports the CLI (seconds on a small board) is one line and the
    shell's status for it, not a traceback: the import itself is interrupted here."""
    import importlib.abc

    import agent.entry

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            if name == "agent.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "agent.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    with pytest.raises(SystemExit) as exc:
        agent.entry.main()
    assert exc.value.code == 130
    assert capsys.readouterr().err == "har-agent: interrupted\n"


def test_a_second_stop_signal_exits_at_once() -> None:
    import signal
    import threading

    from agent.cli_common import on_stop_signal as _on_stop_signal

    stop = threading.Event()
    exits: list[int] = []
    received: list[int] = []
    _on_stop_signal(stop, signal.SIGINT, received, exits.append)
    assert received == [signal.SIGINT] and exits == []  # the first asks the agent to stop
    _on_stop_signal(stop, signal.SIGTERM, received, exits.append)
    assert exits == [128 + signal.SIGTERM]  # the second does not wait for it
    exits.clear()
    stop.set()  # stopping for another reason: a signal now ends it at once too
    _on_stop_signal(stop, signal.SIGTERM, [], exits.append)
    assert exits == [128 + signal.SIGTERM]


def test_a_stop_signal_handler_neither_logs_nor_flushes(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """A handler runs wherever the main thread was: in the middle of a write to stderr ("reentrant
    call inside BufferedWriter") or holding a logging handler's lock (``logging.shutdown()``
    blocks). The first signal only records itself; the second writes its one line straight to
    fd 2 and exits."""
    import logging
    import signal
    import threading

    from agent.cli_common import on_stop_signal

    shutdowns: list[None] = []
    monkeypatch.setattr(logging, "shutdown", lambda *_a: shutdowns.append(None))
    caplog.set_level(logging.DEBUG)
    stop = threading.Event()
    received: list[int] = []
    exits: list[int] = []
    on_stop_signal(stop, signal.SIGTERM, received, exits.append)
    assert received == [signal.SIGTERM] and exits == []
    on_stop_signal(stop, signal.SIGINT, received, exits.append)
    assert exits == [128 + signal.SIGINT]
    assert caplog.records == [] and shutdowns == []
    assert capfd.readouterr().err == "har-agent: received SIGINT again, exiting now\n"


def test_a_signal_while_the_first_handler_runs_exits_at_once() -> None:
    """The first handler can be interrupted (by the next signal) before ``stop`` is set, even
    stuck on ``stop``'s lock if the main thread held it: the recorded signal makes the next one
    end the process all the same."""
    import signal
    import threading

    from agent.cli_common import on_stop_signal

    stop = threading.Event()
    exits: list[int] = []
    on_stop_signal(stop, signal.SIGINT, [signal.SIGTERM], exits.append)
    assert exits == [128 + signal.SIGINT] and not stop.is_set()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_are_logged_outside_the_handler(
    signum: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM, SIGINT and SIGHUP each set the stop event (SIGHUP killed ``har-agent run``
    outright: no goodbye, the outbox's counters not written); the line saying so is logged
    outside the handler, and the previous handlers come back afterwards."""
    import logging
    import signal

    from agent.cli_common import stop_on_signals

    sig = signal.Signals[signum]
    caught: list[int] = []
    # (this process's own handler first: a signal the code under test does not catch must not
    # end the test run)
    before = signal.signal(sig, lambda n, _f: caught.append(n))
    caplog.set_level(logging.INFO, logger="agent")
    try:
        mine = signal.getsignal(sig)
        with stop_on_signals() as stop:
            os.kill(os.getpid(), sig)
            assert stop.wait(10), f"{signum} did not set the stop event"
        assert signal.getsignal(sig) is mine
    finally:
        signal.signal(sig, before)
    assert caught == []
    assert f"received {signum}, stopping" in caplog.messages


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_still_stops() -> None:
    """``Event.wait`` holds the event's lock for a few bytecodes; a handler run there must not
    take it (it would wait for ever on its own thread: ``systemctl stop`` ends in SIGKILL)."""
    import signal
    import threading

    from agent.cli_common import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    try:
        with stop_on_signals() as stop:
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)
            returned = threading.Event()

            def watchdog() -> None:
                if not returned.wait(3):
                    os.write(2, b"the handler hung on the stop event's lock\n")
                    os._exit(99)  # a hang would block the test run for ever

            threading.Thread(target=watchdog, daemon=True).start()
            with stop._cond:  # type: ignore[attr-defined]  # what Event.wait holds briefly
                handler(signal.SIGTERM, None)
            returned.set()
            assert stop.wait(10), "the stop event was never set"
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_ignored_sighup_stays_ignored() -> None:
    """``nohup har-agent run &``: closing the terminal must not stop it."""
    import signal

    from agent.cli_common import stop_on_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize(
    ("command", "signum"), [("replay", "SIGINT"), ("run", "SIGTERM"), ("run", "SIGHUP")]
)
def test_a_stop_while_the_broker_has_not_answered_is_a_clean_stop(
    tmp_path: Path, command: str, signum: str
) -> None:
    """The real entry point; a broker that accepts the TCP connection and never answers. Ctrl-C,
    SIGTERM or SIGHUP while the agent waits for its CONNACK stop it at once, cleanly, with the
    exit status of a stop while running (0 for the daemon, 128 + signal for an interrupted
    replay). They were ignored until ``mqtt.connect_timeout_s`` ran out, then a replay reported
    the broker (status 1); SIGHUP killed the process."""
    import signal
    import socket

    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace('id = "demo"', f'id = "stop-connect-{os.getpid()}"'))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)  # the kernel completes the handshake; nothing is ever sent back
        server.settimeout(120)
        broker = f"127.0.0.1:{server.getsockname()[1]}"
        args = [command, "--profile", str(prof), "--broker", broker]
        if command == "replay":
            args.insert(1, str(RECORDINGS[0]))
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", *args],
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            # as started by a shell or systemd, even when the suite runs under nohup (whose
            # ignored SIGHUP the agent would keep, as it should)
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(60)
                assert conn.recv(1) == b"\x10"  # CONNECT: the agent waits for the CONNACK
                proc.send_signal(signal.Signals[signum])
                _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # a daemon that was asked to stop has done its job; a replay that was is incomplete (as a
    # shell reports a command a signal ended: 128 + the signal's number)
    assert proc.returncode == (0 if command == "run" else 128 + signal.Signals[signum]), err
    assert f"received {signum}, stopping" in err
    assert f"stopped before the MQTT broker at {broker} answered" in err
    assert "har-agent: error" not in err and "Traceback" not in err
    if command == "replay":  # not "the recording holds 0 samples: not enough for one window"
        assert "0 windows in" in err and "(stopped before the first window)" in err
        assert f"interrupted ({signum}) at 0:00:00.0 of the recording" in err
        assert "not enough" not in err


def test_profile_help_names_its_environment_variable() -> None:
    for args in (
        ["run", "--help"],
        ["replay", "--help"],
        ["bench", "--help"],
        ["record", "--help"],
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert "[env: HAR_AGENT_PROFILE]" in result.output, args


def test_replay_refuses_a_device_with_a_trailing_newline() -> None:
    res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--no-mqtt", "--device", "demo\n"])
    one_line_error(res, "--device 'demo\\n': must be 1-64")


@pytest.mark.parametrize("speed", ["1e-300", "1e9", "-1", "nan", "inf"])
def test_replay_refuses_a_speed_out_of_range_in_one_line(speed: str) -> None:
    """--speed 1e-300 ended in 'OverflowError: timestamp out of range for platform time_t';
    -1 and nan got typer's boxed usage error (nan's said 'should be >= 0'), 1e9 one line: every
    value out of range is now the same one-line usage error, naming the real range."""
    args = ["replay", str(RECORDINGS[0]), "--no-mqtt", "--speed", speed]
    res = runner.invoke(app, args, prog_name="har-agent")
    line = error_line(res, exit_code=2)
    assert "Invalid value for '--speed': must be 0 (as fast as possible) or between 0.001" in line
    assert line.endswith("(see 'har-agent replay --help')"), line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["replay", "--bogus"], "No such option: --bogus (see 'har-agent replay --help')"),
        (["replay"], "Missing argument 'SESSION' (see 'har-agent replay --help')"),
        (["nope"], "No such command 'nope' (see 'har-agent --help')"),
        (["recording", "nope"], "No such command 'nope' (see 'har-agent recording --help')"),
        (["bench", "-m", "x", "--seed", "-1"], "Invalid value for '--seed'"),
        (["replay", "x", "--speed", "abc"], "Invalid value for '--speed'"),
        (["models", "show"], "Missing argument 'ID'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_status_2(args: list[str], fragment: str) -> None:
    """A command line that cannot be parsed: one ``har-agent: error:`` line naming the help to
    read, exit status 2 (it was typer's usage lines and a boxed error)."""
    res = runner.invoke(app, args, prog_name="har-agent")
    line = error_line(res, exit_code=2)
    assert fragment in line, line
    assert "Usage:" not in res.output and "╭" not in res.output, res.output


@pytest.mark.parametrize("args", [[], ["recording"], ["models"]])
def test_no_arguments_still_show_the_help(args: list[str]) -> None:
    res = runner.invoke(app, args, prog_name="har-agent")
    assert "Usage:" in res.output and "har-agent: error" not in res.output


def _run_or_replay_args(tmp_path: Path, command: str, device: str) -> list[str]:
    """``run`` or ``replay`` (of a bundled recording, no MQTT) with a copy of the default
    profile under its own device id (so no running demo agent holds it)."""
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace('id = "demo"', f'id = "{device}-{os.getpid()}"'))
    args = [command, "--profile", str(prof)]
    if command == "replay":
        args += [str(RECORDINGS[0]), "--no-mqtt"]
    return args


@pytest.mark.parametrize("command", ["run", "replay"])
def test_an_os_error_while_running_is_one_line_that_says_so(
    tmp_path: Path, monkeypatch: Any, command: str
) -> None:
    """An I/O error once the agent runs (a full disk) is not worded as a file it cannot open."""
    import errno

    import agent.wiring

    class Failing:
        def run(self) -> Any:
            raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/har-agent/o.db")

    monkeypatch.setattr(agent.wiring, "build_agent", lambda *_, **__: Failing())
    res = runner.invoke(app, _run_or_replay_args(tmp_path, command, "oserr-run"))
    one_line_error(
        res, "/var/lib/har-agent/o.db: I/O error while running (No space left on device)"
    )


@pytest.mark.parametrize("command", ["run", "replay"])
def test_an_os_error_while_starting_is_one_line(
    tmp_path: Path, monkeypatch: Any, command: str
) -> None:
    """A file that cannot be opened (here: a name too long) that no check caught before."""
    import errno

    import agent.wiring

    def fail(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "a" * 5000)

    monkeypatch.setattr(agent.wiring, "build_agent", fail)
    res = runner.invoke(app, _run_or_replay_args(tmp_path, command, "oserr"))
    one_line_error(res, "/x/aaaa")
    one_line_error(res, "(5003 characters): cannot open (File name too long)")


def test_print_lines_keep_their_columns_and_the_summary_counts_unscored_windows() -> None:
    result = runner.invoke(
        app,
        ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--print", "-m", "cnn1d-base"],
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("#")]
    assert len(lines) > 100
    # the latency ends at the same column whatever the labels (the truth comes after it)
    assert len({ln.index(" ms") for ln in lines}) == 1
    assert any("truth" in ln for ln in lines) and any(
        "smoothed WALKING_UPSTAIRS" in ln for ln in lines
    )
    # the windows not scored, in one clause (two: '4 windows not scored (labels the model has
    # not); 116 windows without one label (not scored)'), adding up with the labelled ones
    (summary,) = [ln for ln in result.stderr.splitlines() if " windows in " in ln]
    found = re.search(
        r"(\d+) windows in .* on (\d+) labelled windows; (\d+) windows not scored "
        r"\((\d+) with a label the model has not, (\d+) with mixed or missing labels\)$",
        summary,
    )
    assert found, summary
    windows, labelled, unscored, outside, mixed = map(int, found.groups())
    assert outside > 0 and mixed > 0 and outside + mixed == unscored == windows - labelled
    assert result.stderr.count("(estimated)") <= 1


@pytest.mark.parametrize(
    ("outside", "mixed", "text"),
    [
        (0, 0, ""),
        (1, 0, "; 1 window not scored (with a label the model has not)"),
        (4, 0, "; 4 windows not scored (with a label the model has not)"),
        (0, 116, "; 116 windows not scored (with mixed or missing labels)"),
        (
            4,
            116,
            "; 120 windows not scored (4 with a label the model has not, "
            "116 with mixed or missing labels)",
        ),
    ],
)
def test_the_windows_not_scored_are_one_clause(outside: int, mixed: int, text: str) -> None:
    from agent.cli_replay import _unscored_text

    assert _unscored_text(outside, mixed) == text


def test_one_configuration_switch_is_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said '1 configuration switches'."""
    _heated_after(monkeypatch, hot=20, cool=10**9)  # steps down once, never back
    prof = _adaptive_timing_profile(tmp_path)
    args = ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--device", "switch-test"]
    result = runner.invoke(app, [*args, "--profile", str(prof)])
    assert result.exit_code == 0, result.output
    (summary,) = [ln for ln in result.stderr.splitlines() if " windows in " in ln]
    assert "; 1 configuration switch" in summary and "switches" not in summary, summary


def _commands() -> list[list[str]]:
    """Every command path of the CLI (``["models", "show"]``, ...), read from the app itself."""
    import typer.main

    def walk(cmd: Any, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", None)  # a group (typer ships its own click)
        if subs:
            return [p for name, sub in subs.items() for p in walk(sub, [*path, name])]
        return [path]

    return walk(typer.main.get_command(app), [])


def _groups() -> list[list[str]]:
    """The app itself and each of its command groups (``[]``, ``["models"]``, ...)."""
    return [[], *map(list, sorted({tuple(c[:-1]) for c in _commands() if len(c) > 1}))]


@pytest.mark.parametrize(
    "command", _groups() + _commands(), ids=lambda c: " ".join(c) or "har-agent"
)
def test_flags_do_not_look_like_they_take_a_value(command: list[str]) -> None:
    """No flag's help row shows '<bool>' (users typed '--print true'), typer's own --help and
    the groups' included."""
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    rows = [ln for ln in result.output.splitlines() if "<bool>" in ln]
    assert rows == []


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_an_interrupted_replay_says_so_and_exits_128_plus_the_signal(
    tmp_path: Path, signum: str
) -> None:
    """A replay stopped by a signal is incomplete: its summary says where it stopped, and the
    exit status is a shell's for a command a signal ended, so ``replay ... && next`` does not
    go on as if the whole recording had been replayed (it was 0, like a finished replay)."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "replay", str(RECORDINGS[0]), "--speed", "50"]
        + ["--no-mqtt", "--print", "--device", f"interrupt-{os.getpid()}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # (--print with --no-mqtt: predictions on stderr)
            if line.startswith("#2 "):
                break
        proc.send_signal(signal.Signals[signum])
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.Signals[signum], err
    summary = [ln for ln in err.splitlines() if " windows in " in ln]
    assert len(summary) == 1 and f"; interrupted ({signum}) at 0:00:" in summary[0], err
    assert "Traceback" not in err and "har-agent: error" not in err


def test_a_finished_replay_says_nothing_of_an_interruption() -> None:
    result = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt"])
    assert result.exit_code == 0, result.output
    assert "interrupted" not in result.stderr and " windows in " in result.stderr


def _finite_run_profile(tmp_path: Path, device: str, port: int) -> Path:
    """The default profile replaying its recording once (``loop = false``: ``run`` ends by
    itself), at full speed, against a broker nobody listens on (the outbox keeps the
    predictions), its outbox in ``tmp_path``."""
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "{device}-{os.getpid()}"')
    text = text.replace("speed = 1.0", "speed = 0").replace("loop = true", "loop = false")
    text = text.replace("port = 1883", f"port = {port}")
    text += f'\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
    prof.write_text(text)
    return prof


def test_run_takes_a_model_as_replay_does(tmp_path: Path, caplog: Any) -> None:
    """``run -m ID`` runs that member alone (``replay`` had ``-m``; ``run`` had not)."""
    caplog.set_level("INFO", logger="agent")
    member = "wc-w0.25-r064"
    with closed_port() as port:
        prof = _finite_run_profile(tmp_path, "run-m", port)
        res = runner.invoke(app, ["run", "-p", str(prof), "-m", member, "--print"])
    assert res.exit_code == 0, res.output
    assert any(m.startswith(f"model {member} (") for m in caplog.messages), caplog.messages
    assert "#0 " in res.stdout


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-m", "nope"], "--model: unknown model 'nope'"),
        (["--force", "nope"], "--force: unknown model 'nope'"),
        (["-m", "wc-w0.25-r064", "--force", "wc-w0.25-r064"], "--force"),
    ],
)
def test_run_refuses_a_bad_model_choice_before_opening_anything(
    tmp_path: Path, extra: list[str], fragment: str
) -> None:
    """An unknown id or contradicting options: one line, and no outbox created (``--force
    nope`` opened the outbox first)."""
    with closed_port() as port:
        prof = _finite_run_profile(tmp_path, "run-bad-m", port)
        res = runner.invoke(app, ["run", "-p", str(prof), *extra])
    one_line_error(res, fragment)
    assert not (tmp_path / "outbox.db").exists()
    assert "outbox" not in res.stderr.replace(str(tmp_path), ""), res.stderr


def test_a_model_dir_that_does_not_exist_names_the_profile_key(tmp_path: Path) -> None:
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../recordings', f'"{ROOT}/recordings')
    prof.write_text(text.replace('dir = "../models"', 'dir = "../nomodels"'))
    res = runner.invoke(app, ["replay", str(RECORDINGS[0]), "-p", str(prof), "--no-mqtt"])
    one_line_error(res, f"{prof}: model.dir '../nomodels': no such folder")


def test_a_replay_says_where_its_predictions_went(tmp_path: Path, caplog: Any) -> None:
    """Its summary says the broker acknowledged everything (a --no-mqtt replay's does not);
    a paced one without --print says at start where its predictions go (it printed nothing
    for the minutes it ran)."""
    caplog.set_level("INFO", logger="agent")
    broker = start_broker(tmp_path)
    try:
        device = f"where-{os.getpid()}"
        args = ["replay", str(RECORDINGS[0]), "--device", device, "--speed", "1000"]
        res = runner.invoke(app, [*args, "--broker", f"127.0.0.1:{broker.port}"])
    finally:
        stop_broker(broker)
    assert res.exit_code == 0, res.output
    assert f"; all acknowledged by the MQTT broker at 127.0.0.1:{broker.port}" in res.stderr
    assert any(
        m.startswith(f"replaying at 1000x; predictions go to har/{device}/prediction")
        for m in caplog.messages
    ), caplog.messages
    quiet = runner.invoke(app, ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt"])
    assert quiet.exit_code == 0 and "acknowledged" not in quiet.stderr
