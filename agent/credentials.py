"""MQTT credentials: read from a file that only its owner (and group) may read, that only its
owner may write, and that belongs to the user running the agent or to root; never from the
profile or the command line. The file is TOML::

    username = "har-agent"
    password = "..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, password='***')"


def load_credentials(path: Path) -> Credentials:
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the credentials file ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: the credentials file is not a regular file")
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        raise ConfigError(
            f"{path}: the credentials file is readable or writable by others, or writable by "
            f"its group (mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path} "
            f"(640 for a group that runs the agent)"
        )
    if st.st_uid not in (0, os.geteuid()):  # another user could rewrite it
        raise ConfigError(
            f"{path}: the credentials file belongs to user id {st.st_uid}, not to this user "
            f"({os.geteuid()}) or root; run: chown root {path} (readable by the agent's group, "
            "not writable by the agent)"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable credentials file ({exc})") from exc
    except RecursionError:
        raise ConfigError(f"{path}: unreadable credentials file (nested too deeply)") from None
    extra = set(raw) - {"username", "password"}
    if extra:
        raise ConfigError(f"{path}: unknown key(s) {sorted(extra)} in the credentials file")
    user, pw = raw.get("username"), raw.get("password")
    if not isinstance(user, str) or not user or not isinstance(pw, str):
        raise ConfigError(f"{path}: the credentials file needs a username and a password string")
    return Credentials(user, pw)
