"""Checks of single profile values that need more than a type and a range: replay speeds, paths
and the broker's host. Each returns why a value is refused, or None (the caller names the key).
:func:`got` is how every range or choice error of a profile shows the value it refused."""

from __future__ import annotations

import ipaddress
import os
import re

_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
MAX_HOST_CHARS = 253
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255
SPEED_RANGE = (0.001, 1_000_000.0)
"""Replay speeds besides 0 (as fast as possible): slower ones make pacing deadlines overflow."""


SHOWN_CHARS = 60
"""Longer strings are cut in messages (a refused value stays one line of reasonable length)."""


def shown(value: object) -> str:
    """``value`` as a profile error shows it: a boolean as TOML writes it, anything else as its
    repr (a line break shows as ``\\n``), a string longer than :data:`SHOWN_CHARS` cut to its
    start and its length."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[: SHOWN_CHARS - 20]!r}..., {len(value)} characters"
    return repr(value)


def got(value: object, *others: tuple[str, object]) -> str:
    """The end of every range or choice error of a profile: ``(got 70000)``, ``(got 'median')``;
    ``others`` are the (dotted key, value) pairs a rule between keys compares with, e.g.
    ``(got 100 with mqtt.reconnect_max_s = 10)``."""
    pairs = " and ".join(f"{key} = {shown(v)}" for key, v in others)
    return f"(got {shown(value)}{' with ' + pairs if pairs else ''})"


def check_speed(speed: float) -> str | None:
    """Why a replay speed is refused, or None (the profile's source.speed, replay --speed)."""
    lo, hi = SPEED_RANGE
    if speed == 0 or lo <= speed <= hi:  # NaN fails both
        return None
    return f"must be 0 (as fast as possible) or between {lo:g} and {hi:g} {got(speed)}"


def check_path(path: str) -> str | None:
    """Why a path from a profile cannot name a file (too long), or None. (A NUL byte is refused
    earlier, for every string of a profile.)"""
    raw = os.fsencode(path)
    if len(raw) > MAX_PATH_BYTES:
        return f"is {len(raw)} bytes long; a path may have at most {MAX_PATH_BYTES}"
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > MAX_NAME_BYTES:
        return f"has a file or folder name of {longest} bytes; at most {MAX_NAME_BYTES} are allowed"
    return None


def check_host(host: str) -> str | None:
    """Why ``host`` is not a host name or IP address the MQTT client can connect to, or None.

    paho refuses an empty host only when it connects (the agent would die there), and a host
    that is not a valid DNS name fails the IDNA encoding in paho's network thread, which then
    prints a traceback on every reconnect, forever."""
    if not host:
        return "must not be empty (the broker's host name or IP address, e.g. 'localhost')"
    shown = host if len(host) <= 60 else f"{host[:40]}... ({len(host)} characters)"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host  # a trailing dot: the root, not a label
    if len(name) > MAX_HOST_CHARS:
        return f"{shown!r} is longer than {MAX_HOST_CHARS} characters"
    labels = name.split(".")
    if not host.isascii() or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return (
            f"{shown!r} is not a host name or IP address (dot-separated labels of 1-63 "
            "letters, digits, '-' or '_', not starting or ending with '-'; an international "
            "name in its xn-- form)"
        )
    return None
