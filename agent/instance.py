"""One agent per device id on a machine.

Two daemons with the same device id share the MQTT client id and the outbox: the broker drops
each in turn as the other connects, their predictions interleave under one topic, and both
write the same outbox. ``har-agent run`` therefore claims the device first, by binding an
abstract UNIX socket named after it: the kernel lets one process hold a name at a time, across
users (the service's and a login's), with no file to leave behind, and frees it when the process
ends, however it ends. Agents on different machines with one device id meet only at the broker;
the MQTT link names that case when the broker says so (session taken over).
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


def claim_device(device_id: str) -> socket.socket | None:
    """Hold the device's name for as long as the returned socket is open (keep a reference).
    DeviceInUse if another process holds it; ``None`` where abstract sockets do not exist."""
    if not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0har-agent/device/{device_id}")
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DeviceInUse(
                f"another har-agent is already running as device {device_id!r} on this "
                "machine (the service?); stop it first, or give this one another device.id"
            ) from None
        log.warning("cannot check for another agent as device %r (%s)", device_id, exc)
        return None
    return sock
