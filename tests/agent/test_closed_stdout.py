"""A closed stdout ends every command quietly (exit status 141, as a Unix tool killed by SIGPIPE),
and any other error writing stdout names stdout: the real entry point, in a fresh process."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli_common import os_error
from tests.agent.helpers import RECORDINGS, ROOT


def _har_agent(args: list[str], stdout: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _with_closed_stdout(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``har-agent ARGS | head -0``: the pipe's reader is gone before the command writes (no
    race with the command finishing first, as a reader closed after some lines would have)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return _har_agent(args, write_end, tmp_path)
    finally:
        os.close(write_end)


def _replay_args(device: str) -> list[str]:
    return ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--device", device]


def _assert_quiet(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 141, proc.stderr
    for noise in ("har-agent: error", "Traceback", "Exception ignored", "Broken pipe"):
        assert noise not in proc.stderr, proc.stderr


def test_models_list_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = _with_closed_stdout(["models", "list"], tmp_path)
    _assert_quiet(proc)
    assert proc.stderr == ""


def test_a_replay_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """Was ``har-agent: error: a file: I/O error while running (Broken pipe)``, exit 1."""
    _assert_quiet(_with_closed_stdout(_replay_args(f"closed-{os.getpid()}"), tmp_path))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "list"], "har-agent: error: stdout: No space left on device"),
        (
            _replay_args(f"full-{os.getpid()}"),
            "har-agent: error: stdout: I/O error while running (No space left on device)",
        ),
    ],
)
def test_a_full_disk_behind_stdout_is_one_line_naming_stdout(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Not the placeholder "a file", and reported once (the buffer is not retried at exit)."""
    with open("/dev/full", "w") as full:
        proc = _har_agent(args, full.fileno(), tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("har-agent: error:")]
    assert errors == [message], proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


@pytest.mark.parametrize(
    ("exc", "running", "message"),
    [
        (OSError(errno.EIO, "Input/output error"), True, "I/O error while running (Input/"),
        (OSError(errno.EACCES, "Permission denied"), False, "I/O error while starting (Perm"),
        (OSError(errno.EIO, "Input/output error", b"/d/r.bin"), True, "/d/r.bin: I/O error"),
        (OSError(errno.EACCES, "Permission denied", "/etc/x"), False, "/etc/x: cannot open ("),
    ],
)
def test_an_os_error_names_the_file_or_no_placeholder(
    exc: OSError, running: bool, message: str
) -> None:
    text = str(os_error(exc, running))
    assert text.startswith(message) and "a file" not in text, text


def test_an_error_exit_keeps_its_status_when_the_final_flush_meets_a_closed_pipe() -> None:
    """A command that fails (exit 1) with output still buffered, into a closed pipe: the flush
    on the way out must not turn the failure into a quiet 141."""
    code = (
        "import sys\n"
        "from agent.stdout_pipe import guarded_stdout\n"
        "with guarded_stdout():\n"
        "    sys.stdout.write('buffered, never flushed\\n')\n"
        "    raise SystemExit(1)\n"
    )
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_print_into_a_closed_pipe_says_why_it_stops(tmp_path: Path) -> None:
    """``har-agent run --print | head``: the daemon ends (status 141), and its log says why
    (the journal would otherwise show a daemon that stopped for no reason)."""
    text = (ROOT / "profiles" / "default.toml").read_text()
    text = text.replace('"../', f'"{ROOT}/').replace("speed = 1.0", "speed = 50.0")
    text = text.replace('id = "demo"', f'id = "closed-run-{os.getpid()}"')
    text = text.replace("port = 1883", "port = 9")  # nothing listens: the outbox spools
    prof = tmp_path / "p.toml"
    prof.write_text(text)
    proc = _with_closed_stdout(["run", "--profile", str(prof), "--print"], tmp_path)
    assert proc.returncode == 141, proc.stderr
    assert "stopped: stdout was closed (what read --print's lines has gone)" in proc.stderr
    assert "Traceback" not in proc.stderr
