"""Closing the terminal (a real SIGHUP, then every write to the hung-up tty fails with EIO)
stops ``har-agent replay`` cleanly, exit status 129 (128 + SIGHUP: an interrupted replay), as
docs/reliability.md says: the real entry point in a fresh process whose controlling terminal is a
pty."""

from __future__ import annotations

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
