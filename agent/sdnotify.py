"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``), spoken directly over the
``$NOTIFY_SOCKET`` datagram socket: READY once the pipeline runs, STATUS lines, STOPPING, and
WATCHDOG pings that come from pipeline progress, never from a timer of their own.

:class:`WatchdogGate` is the pure part: given the watchdog interval and the times at which the
pipeline made progress, it says when to ping. :class:`SystemdNotifier` is the I/O adapter; outside
systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class WatchdogGate:
    """Ping at most every ``interval/2`` seconds, and only while progress is fresh.

    ``stale_after_s`` (default: the whole watchdog interval) is how old the last progress may be
    for the pipeline to count as healthy. A hung pipeline makes no progress, the pings stop, and
    systemd restarts the service once ``WatchdogSec`` passes.
    """

    def __init__(self, interval_s: float, stale_after_s: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("watchdog interval must be positive")
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s if stale_after_s is not None else interval_s
        self._last_ping: float | None = None
        self._last_progress: float | None = None

    def progress(self, now: float) -> None:
        self._last_progress = now

    def should_ping(self, now: float) -> bool:
        if self._last_progress is None or now - self._last_progress > self.stale_after_s:
            return False
        if self._last_ping is not None and now - self._last_ping < self.interval_s / 2:
            return False
        self._last_ping = now
        return True


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """``$WATCHDOG_USEC`` in seconds, if it is set for this process (``$WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec) / 1e6
    except ValueError:
        return None
    return value if value > 0 else None


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr: str | bytes | None = None
        if addr.startswith("@"):
            self._addr = b"\0" + addr[1:].encode()
        elif addr.startswith("/"):
            self._addr = addr
        interval = watchdog_interval(env)
        self.gate = WatchdogGate(interval) if interval else None
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def _send(self, message: str) -> None:
        if self._addr is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self._addr)
            if self._failed:
                log.info("systemd notify socket works again")
                self._failed = False
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd (%s)", exc)
                self._failed = True

    def ready(self, status: str = "") -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def progress(self, now: float) -> None:
        """The pipeline made progress at ``now`` (monotonic seconds): ping if it is time."""
        if self.gate is None:
            return
        self.gate.progress(now)
        if self.gate.should_ping(now):
            self._send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
