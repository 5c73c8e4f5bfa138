"""Closing the terminal (a real SIGHUP, then every write to the hung-up tty fails with EIO)
stops ``har-agent replay`` cleanly, exit status 129 (128 + SIGHUP: an interrupted replay), as
docs/reliability.md says: the real entry point in a fresh process whose controlling terminal is a
pty."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.agent.helpers import ROOT

RECORDING = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"


def _take_the_pty_as_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # a suite run under nohup would hand the agent an ignored SIGHUP, which it keeps (as nohup
    # asks): the agent here is started from a terminal
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("stderr_on_tty", [False, True], ids=["stderr-file", "stderr-tty"])
def test_closing_the_terminal_stops_a_replay_cleanly(tmp_path: Path, stderr_on_tty: bool) -> None:
    """Was ``har-agent: error: stdout: I/O error while running (Input/output error)``, exit 1."""
    master, slave = os.openpty()
    log_path = tmp_path / "stderr.txt"
    device = f"test-hup-{os.getpid()}-{int(stderr_on_tty)}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "replay", str(RECORDING), "--no-mqtt"]
            + ["--device", device, "--speed", "5"],
            stdin=slave,
            stdout=slave,
            stderr=slave if stderr_on_tty else log,
            start_new_session=True,
            preexec_fn=_take_the_pty_as_controlling_terminal,
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
            cwd=ROOT,
        )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 120
        while b"\n" not in seen and time.monotonic() < deadline:  # the agent is running
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                seen += os.read(master, 4096)
        assert b"\n" in seen, "the replay wrote nothing to its terminal"
    finally:
        os.close(master)  # the terminal closes: SIGHUP, then EIO on every write to it
    try:
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log_path.read_text()
    assert status == 128 + signal.SIGHUP, stderr
    if not stderr_on_tty:
        assert "received SIGHUP, stopping" in stderr
        for noise in ("har-agent: error", "Traceback", "Logging error"):
            assert noise not in stderr, stderr


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_hung_up_terminal_is_let_go_before_its_sighup_is_handled(
    stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel fails writes to a hung-up terminal (EIO) at once; Python runs the SIGHUP
    handler a moment later. A write in between was ``stdout: I/O error while running``, exit 1
    (seen on a loaded machine): it now goes to /dev/null and the stop that follows ends the
    command as a closed terminal should."""
    from agent import stdout_pipe

    monkeypatch.setattr(stdout_pipe, "_stopping", False)  # no stop signal seen yet
    master, slave = os.openpty()
    fd = os.dup(slave)
    try:
        guarded = (stdout_pipe._StdoutFile if stream == "stdout" else stdout_pipe._StderrFile)(fd)
        assert guarded.was_tty
        assert guarded.write(b"before\n") == 7
        os.close(master)  # the terminal hangs up
        master = -1
        with pytest.raises(OSError) as exc:
            os.write(slave, b"x")
        assert exc.value.errno == errno.EIO  # what a write to it gets now
        assert guarded.write(b"after\n") == 6  # taken, not raised
        assert os.path.realpath(f"/proc/self/fd/{fd}") == os.devnull
        assert not getattr(guarded, "failed", False)
    finally:
        for d in (master, slave, fd):
            if d >= 0:
                os.close(d)


def test_eio_on_a_file_that_was_no_terminal_is_still_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import stdout_pipe

    monkeypatch.setattr(stdout_pipe, "_stopping", False)
    exc = OSError(errno.EIO, "Input/output error")
    with open(tmp_path / "out.txt", "w") as f:
        assert not stdout_pipe._gone_while_stopping(exc, f.fileno(), was_tty=False)
        assert stdout_pipe._gone_while_stopping(exc, f.fileno(), was_tty=True)
