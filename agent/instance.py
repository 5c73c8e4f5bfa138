"""One process at a time: per device id, per sensor chip, per model bank.

Held by binding an abstract UNIX socket named after the thing (:func:`claim`): the kernel lets
one process hold a name at a time, across users (the service's and a login's), with no file to
leave behind, and frees it when the process ends, however it ends. Uses:

- ``har-agent run`` claims its device id (:func:`claim_device`): two daemons with one id share
  the MQTT client id and the outbox, the broker drops each in turn as the other connects, and
  their predictions interleave. Agents on different machines meet only at the broker, which
  the MQTT link names when the broker says so (session taken over);
- ``har-agent replay`` claims it too when it publishes to MQTT: its client id is its own, but
  its retained status, config and metrics would overwrite the running agent's (``offline``
  while the daemon still runs);
- the sensor source claims its chip (two readers would split its FIFO);
- the model tools claim the bank they change (tools/bank/staging.py).
"""

from __future__ import annotations

import errno
import logging
import socket
import sys

from agent.errors import AgentError

log = logging.getLogger(__name__)


class DeviceInUse(AgentError):
    """Another agent on this machine runs as the same device."""


class NameInUse(Exception):
    """Another process holds the name."""


def claim(name: str) -> socket.socket | None:
    """Hold ``har-agent/<name>`` (an abstract UNIX socket) while the returned socket is open.
    NameInUse if another process holds it; ``None`` where it cannot be checked: not Linux
    (silently: abstract sockets are Linux's), or no UNIX sockets allowed (a warning)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:  # e.g. a sandbox without AF_UNIX
        log.warning("cannot check for another process holding %s (%s)", name, exc)
        return None
    try:
        sock.bind(f"\0har-agent/{name}")
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise NameInUse(name) from None
        log.warning("cannot check for another process holding %s (%s)", name, exc)
        return None
    return sock


RUN_ADVICE = "stop it first, or give this one another device.id"
REPLAY_ADVICE = "replay as another device with --device ID"


def claim_device(device_id: str, advice: str = RUN_ADVICE) -> socket.socket | None:
    """Hold the device's name for as long as the returned socket is open (keep a reference).
    DeviceInUse if another agent holds it; its message ends with ``advice`` (what to do)."""
    try:
        return claim(f"device/{device_id}")
    except NameInUse:
        raise DeviceInUse(
            f"another har-agent is already running as device {device_id!r} on this "
            f"machine (the service?); {advice}"
        ) from None
