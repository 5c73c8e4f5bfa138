import errno
import logging
import os
import socket
from pathlib import Path

import pytest

from agent.sdnotify import SystemdNotifier, WatchdogGate, watchdog_interval


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (time, kind) kind: p = progress, q = query; interval 10 s -> ping at most every 5 s
        ([(0, "q")], [False]),  # no progress yet: no ping
        ([(0, "p"), (0, "q")], [True]),
        ([(0, "p"), (0, "q"), (1, "p"), (1, "q")], [True, False]),  # too soon
        ([(0, "p"), (0, "q"), (6, "p"), (6, "q")], [True, True]),
        ([(0, "p"), (0, "q"), (11, "q")], [True, False]),  # progress is stale: hung
        ([(0, "p"), (0, "q"), (11, "q"), (12, "p"), (12, "q")], [True, False, True]),  # recovered
    ],
)
def test_watchdog_gate(events: list[tuple[float, str]], expected: list[bool]) -> None:
    gate = WatchdogGate(10.0)
    got = []
    for t, kind in events:
        if kind == "p":
            gate.progress(t)
        else:
            got.append(gate.should_ping(t))
    assert got == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 20.0),
        ({"WATCHDOG_USEC": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env) == expected


def test_notify_protocol_over_a_real_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    try:
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        n = SystemdNotifier(env)
        assert n.enabled
        n.ready("running model x")
        assert server.recv(256) == b"READY=1\nSTATUS=running model x"
        n.progress(100.0)
        assert server.recv(256) == b"WATCHDOG=1"
        n.progress(100.5)  # within interval/2: no datagram
        n.progress(101.2)
        assert server.recv(256) == b"WATCHDOG=1"
        n.stopping()
        assert server.recv(256) == b"STOPPING=1"
        n.close()
    finally:
        server.close()


def test_without_systemd_nothing_happens() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    n.ready()
    n.progress(1.0)
    n.close()


def test_broken_socket_is_logged_once_and_its_recovery_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No listener at ``$NOTIFY_SOCKET``: one warning however many notifications fail, never an
    exception; once the socket works, one info line and the datagrams arrive again."""
    path = tmp_path / "notify.sock"
    n = SystemdNotifier({"NOTIFY_SOCKET": str(path)})

    def logged(level: int) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "agent.sdnotify" and r.levelno == level
        ]

    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        with caplog.at_level(logging.INFO, logger="agent.sdnotify"):
            n.ready("starting")  # nothing listens there: logged, not raised
            n.status("still nobody")
            n.stopping()
            warnings = logged(logging.WARNING)
            assert len(warnings) == 1, warnings
            assert warnings[0].startswith(f"cannot notify systemd ([Errno {errno.ENOENT}]")
            assert logged(logging.INFO) == []

            server.bind(str(path))  # systemd is there now
            server.settimeout(5)
            n.status("back")
            assert server.recv(256) == b"STATUS=back"
            n.status("and again")
            assert server.recv(256) == b"STATUS=and again"
            assert logged(logging.INFO) == ["systemd notify socket works again"]  # once
            assert len(logged(logging.WARNING)) == 1

            server.close()
            path.unlink()  # gone again: a new failure is worth a new warning
            n.status("lost")
            n.status("lost")
            assert len(logged(logging.WARNING)) == 2
    finally:
        n.close()
        server.close()
